-- A tenant's own quotas (see ARCHITECTURE.md, "Quotas"); NULL keeps the server's default,
-- 0 is unlimited.
ALTER TABLE tenants ADD COLUMN max_ingest_metrics_per_s BIGINT NULL;
ALTER TABLE tenants ADD COLUMN max_series BIGINT NULL;

-- The ingest processes read a tenant's series in id order, and then only the ones created
-- since they last looked, to know which series exist before they accept a metric.
CREATE INDEX series_by_tenant ON series (tenant_id, id);
