ALTER TABLE tenants DROP COLUMN rollup_5m_expired_before_ms;
ALTER TABLE tenants DROP COLUMN rollup_1m_expired_before_ms;
ALTER TABLE tenants DROP COLUMN raw_expired_before_ms;
