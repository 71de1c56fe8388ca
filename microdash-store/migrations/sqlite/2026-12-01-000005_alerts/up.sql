-- Alerting (see ARCHITECTURE.md, "Alerts"). Rules and channels are stored as the serde JSON
-- of core's `AlertRule` and `NamedChannel` (a channel's secret included); the columns beside
-- the JSON are what queries filter on.
CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX alert_rules_by_tenant ON alert_rules (tenant_id);

CREATE TABLE alert_channels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX alert_channels_by_tenant ON alert_channels (tenant_id);

-- The current state of each alert instance (a rule applied to one series), what an evaluator
-- resumes from. `instance_key` is the SHA-256 of the series' agent and tags, a fixed-width
-- key (tags can be longer than MariaDB indexes). Deleting a rule deletes its instances.
CREATE TABLE alert_instances (
    rule_id BIGINT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    instance_key TEXT NOT NULL,
    tenant_id BIGINT NOT NULL,
    agent_id TEXT,
    tags TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT,
    since_ms BIGINT NOT NULL,
    value DOUBLE,
    -- The evaluator's whole state of the instance, opaque to the store.
    state_json TEXT NOT NULL,
    PRIMARY KEY (rule_id, instance_key)
) WITHOUT ROWID;
CREATE INDEX alert_instances_by_tenant ON alert_instances (tenant_id, state);

-- The history of transitions. It outlives its rule, so it names the rule rather than
-- referencing it.
CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    rule_id BIGINT NOT NULL,
    rule_name TEXT NOT NULL,
    agent_id TEXT,
    tags TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    severity TEXT,
    value DOUBLE,
    at_ms BIGINT NOT NULL
);
CREATE INDEX alert_events_by_time ON alert_events (tenant_id, at_ms);
-- For retention, which expires every tenant's history at once.
CREATE INDEX alert_events_by_age ON alert_events (at_ms);

-- Notifications: the delivery queue (pending ones) and the delivery log (all of them). A
-- channel's log goes with the channel; a rule's stays after the rule.
CREATE TABLE alert_notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    channel_id BIGINT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    rule_id BIGINT,
    agent_id TEXT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT,
    http_status INTEGER,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms BIGINT
);
CREATE INDEX alert_notifications_due ON alert_notifications (status, next_attempt_ms);
CREATE INDEX alert_notifications_by_tenant ON alert_notifications (tenant_id);
CREATE INDEX alert_notifications_by_channel ON alert_notifications (channel_id);
CREATE INDEX alert_notifications_by_age ON alert_notifications (created_at_ms);

-- One row, bumped in the transaction of every change to rules (and of every channel
-- deletion), so an evaluator sees a change with one cheap query.
CREATE TABLE alert_rules_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO alert_rules_revision (id, revision) VALUES (1, 0);

-- Named leases: "exactly one process does this" (the alert evaluator), until `expires_at_ms`
-- unless renewed.
CREATE TABLE leases (
    name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
) WITHOUT ROWID;
