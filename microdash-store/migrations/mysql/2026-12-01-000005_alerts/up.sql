-- Alerting (see ARCHITECTURE.md, "Alerts"). Rules and channels are stored as the serde JSON
-- of core's `AlertRule` and `NamedChannel` (a channel's secret included); the columns beside
-- the JSON are what queries filter on.
CREATE TABLE alert_rules (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    name VARCHAR(200) NOT NULL,
    definition MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    enabled INTEGER NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    KEY alert_rules_by_tenant (tenant_id),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE alert_channels (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    name VARCHAR(200) NOT NULL,
    kind VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    definition MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    KEY alert_channels_by_tenant (tenant_id),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The current state of each alert instance (a rule applied to one series), what an evaluator
-- resumes from. `instance_key` is the SHA-256 of the series' agent and tags, a fixed-width
-- key (tags can be longer than an index holds). Deleting a rule deletes its instances.
CREATE TABLE alert_instances (
    rule_id BIGINT NOT NULL,
    instance_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tenant_id BIGINT NOT NULL,
    agent_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
    tags TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    severity VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NULL,
    since_ms BIGINT NOT NULL,
    value DOUBLE NULL,
    -- The evaluator's whole state of the instance, opaque to the store.
    state_json TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (rule_id, instance_key),
    KEY alert_instances_by_tenant (tenant_id, state),
    FOREIGN KEY (rule_id) REFERENCES alert_rules (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The history of transitions. It outlives its rule, so it names the rule rather than
-- referencing it.
CREATE TABLE alert_events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    rule_id BIGINT NOT NULL,
    rule_name VARCHAR(200) NOT NULL,
    agent_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
    tags TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    from_state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    to_state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    severity VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NULL,
    value DOUBLE NULL,
    at_ms BIGINT NOT NULL,
    KEY alert_events_by_time (tenant_id, at_ms),
    -- For retention, which expires every tenant's history at once.
    KEY alert_events_by_age (at_ms),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Notifications: the delivery queue (pending ones) and the delivery log (all of them). A
-- channel's log goes with the channel; a rule's stays after the rule.
CREATE TABLE alert_notifications (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    channel_id BIGINT NOT NULL,
    rule_id BIGINT NULL,
    agent_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
    kind VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    payload MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT NULL,
    http_status INTEGER NULL,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms BIGINT NULL,
    KEY alert_notifications_due (status, next_attempt_ms),
    KEY alert_notifications_by_tenant (tenant_id),
    KEY alert_notifications_by_channel (channel_id),
    KEY alert_notifications_by_age (created_at_ms),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    FOREIGN KEY (channel_id) REFERENCES alert_channels (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row, bumped in the transaction of every change to rules (and of every channel
-- deletion), so an evaluator sees a change with one cheap query.
CREATE TABLE alert_rules_revision (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
) ENGINE = InnoDB;
INSERT INTO alert_rules_revision (id, revision) VALUES (1, 0);

-- Named leases: "exactly one process does this" (the alert evaluator), until `expires_at_ms`
-- unless renewed.
CREATE TABLE leases (
    name VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    holder VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    expires_at_ms BIGINT NOT NULL
) ENGINE = InnoDB;
