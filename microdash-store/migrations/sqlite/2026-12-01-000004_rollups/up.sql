-- Exact 1-minute and 5-minute rollups per series, maintained in the transaction that writes
-- the points (see ARCHITECTURE.md, "Rollups"). `last_value` is the value of the bucket's
-- latest point (of points at the same latest time, the largest value).
CREATE TABLE rollups_1m (
    series_id BIGINT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    value_count BIGINT NOT NULL,
    value_sum DOUBLE NOT NULL,
    value_min DOUBLE NOT NULL,
    value_max DOUBLE NOT NULL,
    last_ms BIGINT NOT NULL,
    last_value DOUBLE NOT NULL,
    PRIMARY KEY (series_id, bucket_ms)
) WITHOUT ROWID;

CREATE TABLE rollups_5m (
    series_id BIGINT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    value_count BIGINT NOT NULL,
    value_sum DOUBLE NOT NULL,
    value_min DOUBLE NOT NULL,
    value_max DOUBLE NOT NULL,
    last_ms BIGINT NOT NULL,
    last_value DOUBLE NOT NULL,
    PRIMARY KEY (series_id, bucket_ms)
) WITHOUT ROWID;

-- A tenant's own retention; NULL keeps the server's default.
ALTER TABLE tenants ADD COLUMN retention_raw_hours INTEGER;
ALTER TABLE tenants ADD COLUMN retention_1m_days INTEGER;
ALTER TABLE tenants ADD COLUMN retention_5m_days INTEGER;

-- Existing raw points are rolled up here, so nobody's history starts empty. The bucket is
-- the floor of the timestamp (also before 1970), `last_value` the first of each bucket's
-- points ordered by time, then value, descending. Sums saturate at the largest double, as
-- the write path's do.
INSERT INTO rollups_1m
SELECT series_id, bucket_ms, tenant_id, COUNT(*), MAX(MIN(SUM(value), 1.7976931348623157e308), -1.7976931348623157e308), MIN(value), MAX(value), MAX(ts_ms),
       MAX(CASE WHEN latest = 1 THEN value END)
FROM (
    SELECT series_id, tenant_id, ts_ms, value, bucket_ms,
           ROW_NUMBER() OVER (PARTITION BY series_id, bucket_ms ORDER BY ts_ms DESC, value DESC) AS latest
    FROM (SELECT series_id, tenant_id, ts_ms, value, ts_ms - ((ts_ms % 60000) + 60000) % 60000 AS bucket_ms FROM points)
)
GROUP BY series_id, bucket_ms, tenant_id;

INSERT INTO rollups_5m
SELECT series_id, bucket_ms, tenant_id, COUNT(*), MAX(MIN(SUM(value), 1.7976931348623157e308), -1.7976931348623157e308), MIN(value), MAX(value), MAX(ts_ms),
       MAX(CASE WHEN latest = 1 THEN value END)
FROM (
    SELECT series_id, tenant_id, ts_ms, value, bucket_ms,
           ROW_NUMBER() OVER (PARTITION BY series_id, bucket_ms ORDER BY ts_ms DESC, value DESC) AS latest
    FROM (SELECT series_id, tenant_id, ts_ms, value, ts_ms - ((ts_ms % 300000) + 300000) % 300000 AS bucket_ms FROM points)
)
GROUP BY series_id, bucket_ms, tenant_id;
