DROP TABLE leases;
DROP TABLE alert_rules_revision;
DROP TABLE alert_notifications;
DROP TABLE alert_events;
DROP TABLE alert_instances;
DROP TABLE alert_channels;
DROP TABLE alert_rules;
