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
) ENGINE = InnoDB;

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
) ENGINE = InnoDB;

-- A tenant's own retention; NULL keeps the server's default.
ALTER TABLE tenants ADD COLUMN retention_raw_hours INT NULL;
ALTER TABLE tenants ADD COLUMN retention_1m_days INT NULL;
ALTER TABLE tenants ADD COLUMN retention_5m_days INT NULL;

-- Existing raw points are rolled up here, so nobody's history starts empty. The bucket is
-- the floor of the timestamp (also before 1970), `last_value` the first of each bucket's
-- points ordered by time, then value, descending. Sums are clamped to the largest double
-- (the write path saturates too): MariaDB fails an overflowing addition, so the values are
-- added divided by 2^32 (exact, a power of two) and the sum scaled back where it fits.
INSERT INTO rollups_1m
SELECT series_id, bucket_ms, tenant_id, COUNT(*), CASE WHEN ABS(SUM(value / 4294967296)) >= 1.7976931348623157e308 / 4294967296 THEN SIGN(SUM(value / 4294967296)) * 1.7976931348623157e308 ELSE SUM(value / 4294967296) * 4294967296 END, MIN(value), MAX(value), MAX(ts_ms),
       MAX(CASE WHEN latest = 1 THEN value END)
FROM (
    SELECT series_id, tenant_id, ts_ms, value, bucket_ms,
           ROW_NUMBER() OVER (PARTITION BY series_id, bucket_ms ORDER BY ts_ms DESC, value DESC) AS latest
    FROM (SELECT series_id, tenant_id, ts_ms, value, ts_ms - ((ts_ms % 60000) + 60000) % 60000 AS bucket_ms FROM points) AS p
) AS q
GROUP BY series_id, bucket_ms, tenant_id;

INSERT INTO rollups_5m
SELECT series_id, bucket_ms, tenant_id, COUNT(*), CASE WHEN ABS(SUM(value / 4294967296)) >= 1.7976931348623157e308 / 4294967296 THEN SIGN(SUM(value / 4294967296)) * 1.7976931348623157e308 ELSE SUM(value / 4294967296) * 4294967296 END, MIN(value), MAX(value), MAX(ts_ms),
       MAX(CASE WHEN latest = 1 THEN value END)
FROM (
    SELECT series_id, tenant_id, ts_ms, value, bucket_ms,
           ROW_NUMBER() OVER (PARTITION BY series_id, bucket_ms ORDER BY ts_ms DESC, value DESC) AS latest
    FROM (SELECT series_id, tenant_id, ts_ms, value, ts_ms - ((ts_ms % 300000) + 300000) % 300000 AS bucket_ms FROM points) AS p
) AS q
GROUP BY series_id, bucket_ms, tenant_id;
