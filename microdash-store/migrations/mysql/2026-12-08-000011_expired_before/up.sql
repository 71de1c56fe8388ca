-- How far the retention task has deleted each tenant's data (Unix ms; NULL: nothing yet).
-- After a retention is raised, data deleted under the shorter setting does not come back:
-- queries choose their level by what is still complete, not by the setting alone (see
-- ARCHITECTURE.md, "Retention").
ALTER TABLE tenants ADD COLUMN raw_expired_before_ms BIGINT NULL;
ALTER TABLE tenants ADD COLUMN rollup_1m_expired_before_ms BIGINT NULL;
ALTER TABLE tenants ADD COLUMN rollup_5m_expired_before_ms BIGINT NULL;
