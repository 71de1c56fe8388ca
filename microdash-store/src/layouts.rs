//! Dashboard layouts: per tenant, how its widgets are arranged (core's
//! [`microdash_core::layout::Layout`], stored as its JSON).

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;
use microdash_core::layout::Layout;

use crate::schema::dashboard_layouts;
use crate::{Store, StoreError, with_conn};

/// A tenant's saved layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayout {
    /// The layout.
    pub layout: Layout,
    /// When it was saved, Unix milliseconds.
    pub updated_at_ms: i64,
}

impl Store {
    /// Tenant `tenant_id`'s saved layout; `None` when it never saved one.
    pub async fn layout(&self, tenant_id: i64) -> Result<Option<StoredLayout>, StoreError> {
        let row: Option<(String, i64)> = with_conn!(self, |conn| dashboard_layouts::table
            .filter(dashboard_layouts::tenant_id.eq(tenant_id))
            .select((dashboard_layouts::layout, dashboard_layouts::updated_at_ms))
            .first(&mut conn)
            .await
            .optional()?);
        row.map(|(json, updated_at_ms)| {
            Ok(StoredLayout { layout: serde_json::from_str(&json).map_err(StoreError::corrupt)?, updated_at_ms })
        })
        .transpose()
    }

    /// Save tenant `tenant_id`'s layout in place of the one it had. The last save wins.
    pub async fn save_layout(&self, tenant_id: i64, layout: &Layout, now_ms: i64) -> Result<StoredLayout, StoreError> {
        let json = serde_json::to_string(layout).map_err(StoreError::corrupt)?;
        let values = (dashboard_layouts::layout.eq(&json), dashboard_layouts::updated_at_ms.eq(now_ms));
        let target = dashboard_layouts::table.filter(dashboard_layouts::tenant_id.eq(tenant_id));
        // Update, else insert; an insert that collides with a concurrent first save updates
        // after all. (One statement would need each backend's own upsert syntax.)
        let updated = with_conn!(self, |conn| diesel::update(target).set(values).execute(&mut conn).await?);
        if updated == 0 {
            let row = (dashboard_layouts::tenant_id.eq(tenant_id), values.0, values.1);
            let inserted = with_conn!(self, |conn| diesel::insert_into(dashboard_layouts::table)
                .values(row)
                .execute(&mut conn)
                .await);
            match inserted {
                Ok(_) => {}
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    with_conn!(self, |conn| diesel::update(target).set(values).execute(&mut conn).await?);
                }
                Err(err) => return Err(StoreError::query(err)),
            }
        }
        Ok(StoredLayout { layout: layout.clone(), updated_at_ms: now_ms })
    }
}
