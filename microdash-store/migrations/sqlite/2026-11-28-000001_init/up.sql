CREATE TABLE tenants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL for admin tokens, which belong to no tenant.
    tenant_id BIGINT REFERENCES tenants (id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    revoked_at_ms BIGINT
);

CREATE TABLE agents (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    agent_id TEXT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
) WITHOUT ROWID;

CREATE TABLE series (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    metric_name TEXT NOT NULL,
    -- Empty when the metric names no agent, so the unique key needs no NULL handling.
    agent_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    -- SHA-256 of name, agent and canonical tags: a fixed-width unique key on every backend.
    series_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX series_identity ON series (tenant_id, series_hash);
CREATE INDEX series_lookup ON series (tenant_id, metric_name, agent_id);

CREATE TABLE points (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    series_id BIGINT NOT NULL REFERENCES series (id),
    ts_ms BIGINT NOT NULL,
    value DOUBLE NOT NULL,
    dedupe_id TEXT
);
CREATE INDEX points_by_series_time ON points (series_id, ts_ms);
-- Partial: only metrics that carry a dedupe_id are constrained, and the others cost no
-- index entry on the insert path.
CREATE UNIQUE INDEX points_dedupe ON points (tenant_id, dedupe_id) WHERE dedupe_id IS NOT NULL;

CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at_ms BIGINT NOT NULL
);
