CREATE TABLE tenants (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    slug VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    name VARCHAR(200) NOT NULL,
    created_at_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE api_tokens (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- NULL for admin tokens, which belong to no tenant.
    tenant_id BIGINT NULL,
    name VARCHAR(200) NOT NULL,
    prefix VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    token_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    scopes VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_used_at_ms BIGINT NULL,
    revoked_at_ms BIGINT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE agents (
    tenant_id BIGINT NOT NULL,
    agent_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB;

CREATE TABLE series (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    metric_name VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- Empty when the metric names no agent, so the unique key needs no NULL handling.
    agent_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tags TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- SHA-256 of name, agent and canonical tags: a fixed-width unique key on every backend.
    series_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    UNIQUE KEY series_identity (tenant_id, series_hash),
    KEY series_lookup (tenant_id, metric_name, agent_id),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE points (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    series_id BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    value DOUBLE NOT NULL,
    -- Binary collation: dedupe ids compare byte for byte, as on SQLite.
    dedupe_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    KEY points_by_series_time (series_id, ts_ms),
    -- NULLs are distinct, so only metrics that carry a dedupe_id are constrained.
    UNIQUE KEY points_dedupe (tenant_id, dedupe_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE dead_letters (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    payload LONGTEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
