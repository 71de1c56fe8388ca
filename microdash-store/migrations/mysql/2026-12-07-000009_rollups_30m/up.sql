-- 30-minute rollups: the 5-minute ones merged six at a time, maintained in the same
-- transaction as the points (see ARCHITECTURE.md, "Rollups"). A month of a series is 1,440
-- of them, so long ranges read a sixth of the rows the 5-minute level would need.
CREATE TABLE rollups_30m (
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

-- Existing history is merged from the 5-minute rollups, which hold every point already
-- stored. `last_value` is that of the 5-minute bucket with the latest point (ties to the
-- larger value), as the write path merges it. Sums saturate at the largest double, as the
-- write path's do (MariaDB fails an overflowing addition, so eighths are added).
INSERT INTO rollups_30m
SELECT series_id, bucket_ms, tenant_id, SUM(value_count),
       CASE WHEN ABS(SUM(value_sum / 8)) >= 1.7976931348623157e308 / 8 THEN SIGN(SUM(value_sum / 8)) * 1.7976931348623157e308 ELSE SUM(value_sum / 8) * 8 END, MIN(value_min), MAX(value_max),
       MAX(last_ms), MAX(CASE WHEN latest = 1 THEN last_value END)
FROM (
    SELECT series_id, tenant_id, value_count, value_sum, value_min, value_max, last_ms, last_value, bucket_ms,
           ROW_NUMBER() OVER (PARTITION BY series_id, bucket_ms ORDER BY last_ms DESC, last_value DESC) AS latest
    FROM (
        SELECT series_id, tenant_id, value_count, value_sum, value_min, value_max, last_ms, last_value,
               bucket_ms - ((bucket_ms % 1800000) + 1800000) % 1800000 AS bucket_ms
        FROM rollups_5m
    ) AS f
) AS q
GROUP BY series_id, bucket_ms, tenant_id;
