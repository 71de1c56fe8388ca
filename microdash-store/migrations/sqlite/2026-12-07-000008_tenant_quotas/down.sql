DROP INDEX series_by_tenant;
ALTER TABLE tenants DROP COLUMN max_series;
ALTER TABLE tenants DROP COLUMN max_ingest_metrics_per_s;
