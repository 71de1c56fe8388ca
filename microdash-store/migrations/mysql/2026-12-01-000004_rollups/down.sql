ALTER TABLE tenants DROP COLUMN retention_5m_days;
ALTER TABLE tenants DROP COLUMN retention_1m_days;
ALTER TABLE tenants DROP COLUMN retention_raw_hours;
DROP TABLE rollups_5m;
DROP TABLE rollups_1m;
