-- A tenant's dashboard layout (widgets hidden, pinned, sized, drawn, in order), as the JSON of
-- microdash_core::layout::Layout: saved on the server, so it follows the tenant's users from
-- one browser to another. One row per tenant; none until a layout is first saved.
CREATE TABLE dashboard_layouts (
    tenant_id BIGINT NOT NULL PRIMARY KEY,
    layout MEDIUMTEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
) ENGINE = InnoDB;
