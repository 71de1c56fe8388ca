//! Alerting's persistence: rules, channels, the state of each alert instance, the history of
//! transitions, the notification queue (which is also the delivery log), and named leases.
//!
//! The store knows core's types only: rules and channels are kept as the serde JSON of
//! [`AlertRule`] and [`NamedChannel`], and an instance's evaluator state is an opaque JSON
//! text the evaluator hands in and gets back ([`InstanceRow::state_json`]), so the store never
//! depends on `microdash-alert`.
//!
//! Every tenant-facing call takes the tenant id first and filters on it, so no call can read
//! or change another tenant's rows. The calls without a tenant (`all_alert_rules`,
//! `all_alert_instances`, `due_notifications`, `record_attempt`, the leases and
//! `expire_alert_history`) are for the evaluator, the sender and retention.
//!
//! Writes go where the store's writes go (`write_with!`): on SQLite through the single
//! writer, on MariaDB in a transaction where several statements must agree.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use microdash_core::alert::{AlertRule, NamedChannel};
use microdash_core::api::alert::{AlertState, NotificationKind, NotificationStatus, Severity};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::ROWS_PER_STATEMENT;
use crate::schema::{
    alert_channels, alert_events, alert_instances, alert_notifications, alert_rules, alert_rules_revision, leases,
};
use crate::{Backend, Pool, Store, StoreError, with_conn, write_with};

/// Longest `last_error` kept, in characters: enough for any error chain worth reading, and a
/// bound on what a misbehaving receiver can make the log store.
pub const MAX_NOTIFICATION_ERROR_CHARS: usize = 2000;
/// Longest lease name, in characters.
pub const MAX_LEASE_NAME_CHARS: usize = 191;
/// Longest lease holder, in characters.
pub const MAX_LEASE_HOLDER_CHARS: usize = 255;

/// An alert rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    /// Database id; what instances, events and notifications refer to.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// The rule itself.
    pub rule: AlertRule,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Last change, Unix milliseconds.
    pub updated_at_ms: i64,
}

/// A notification channel as stored, secret included: answers must go through
/// [`NamedChannel::to_out`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChannel {
    /// Database id; what rules list in `channels`.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name and destination.
    pub channel: NamedChannel,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Last change, Unix milliseconds.
    pub updated_at_ms: i64,
}

/// The stored state of one alert instance: a rule applied to one series, identified within
/// its rule by the series' agent and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    /// Owning tenant (the rule's).
    pub tenant_id: i64,
    /// The rule.
    pub rule_id: i64,
    /// The series' agent; `None` when it has none.
    pub agent_id: Option<String>,
    /// The series' tags.
    pub tags: BTreeMap<String, String>,
    /// Where the instance stands, for listing and filtering.
    pub state: AlertState,
    /// The breached severity while pending or firing.
    pub severity: Option<Severity>,
    /// When `state` was entered, Unix milliseconds.
    pub since_ms: i64,
    /// The latest evaluated value; `None` for no data.
    pub value: Option<f64>,
    /// The evaluator's full state of the instance, as it handed it in; opaque to the store.
    pub state_json: String,
}

/// One entry of the alert history: a transition of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Database id; increases with insertion.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// The rule (which may since have been deleted: history outlives its rule).
    pub rule_id: i64,
    /// The rule's name at the time, so the entry still reads after the rule is gone.
    pub rule_name: String,
    /// The series' agent.
    pub agent_id: Option<String>,
    /// The series' tags.
    pub tags: BTreeMap<String, String>,
    /// The state left.
    pub from: AlertState,
    /// The state entered; equal to `from` for a severity change while firing.
    pub to: AlertState,
    /// The severity after the change.
    pub severity: Option<Severity>,
    /// The value that caused it; `None` for no data.
    pub value: Option<f64>,
    /// When, Unix milliseconds.
    pub at_ms: i64,
}

/// Which history entries [`Store::alert_events`] returns; the tenant is a separate argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Inclusive lower bound on `at_ms`.
    pub start_ms: Option<i64>,
    /// Exclusive upper bound on `at_ms`.
    pub end_ms: Option<i64>,
    /// Only this rule's events.
    pub rule_id: Option<i64>,
    /// Only this agent's events.
    pub agent_id: Option<String>,
    /// Most events to return (0 returns none); when more match, the newest are kept.
    pub limit: usize,
}

/// A transition to append to the history, as part of an [`AlertStep`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewEvent {
    /// The state left.
    pub from: AlertState,
    /// The state entered.
    pub to: AlertState,
    /// The severity after the change.
    pub severity: Option<Severity>,
    /// The value that caused it; `None` for no data.
    pub value: Option<f64>,
    /// When, Unix milliseconds.
    pub at_ms: i64,
}

/// A notification to queue for delivery to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// The channel it goes to; it must be the tenant's.
    pub channel_id: i64,
    /// The rule that caused it; `None` for test messages. When set, it must be the tenant's.
    pub rule_id: Option<i64>,
    /// The alert instance's agent, for the log.
    pub agent_id: Option<String>,
    /// Why it is sent.
    pub kind: NotificationKind,
    /// What the sender delivers (the rendered body), built by the evaluator.
    pub payload: String,
}

/// A notification in the queue or the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    /// Database id; increases with insertion.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// The channel it goes to.
    pub channel_id: i64,
    /// The rule that caused it; `None` for test messages.
    pub rule_id: Option<i64>,
    /// The alert instance's agent, if any.
    pub agent_id: Option<String>,
    /// Why it is sent.
    pub kind: NotificationKind,
    /// What the sender delivers.
    pub payload: String,
    /// Delivery status.
    pub status: NotificationStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// While pending, when the next attempt is due; once sent or failed, when the last
    /// attempt was recorded. Unix milliseconds.
    pub next_attempt_ms: i64,
    /// The latest attempt's error, if it failed.
    pub last_error: Option<String>,
    /// Webhooks: the HTTP status of the latest attempt.
    pub http_status: Option<u16>,
    /// When it was queued, Unix milliseconds.
    pub created_at_ms: i64,
    /// When it was delivered, Unix milliseconds.
    pub sent_at_ms: Option<i64>,
}

/// How one delivery attempt went ([`Store::record_attempt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Delivered.
    Sent {
        /// Webhooks: the answer's status.
        http_status: Option<u16>,
    },
    /// Not delivered; try again at `next_attempt_ms`.
    Retry {
        /// What went wrong.
        error: String,
        /// Webhooks: the answer's status, if there was an answer.
        http_status: Option<u16>,
        /// When to try again, Unix milliseconds.
        next_attempt_ms: i64,
    },
    /// Not delivered, and no more attempts will be made.
    Failed {
        /// What went wrong.
        error: String,
        /// Webhooks: the answer's status, if there was an answer.
        http_status: Option<u16>,
    },
}

/// The lease a write is fenced by: the write is made only if `holder` still holds `lease`
/// by the database's clock, checked inside the write's own transaction. On MariaDB the check
/// takes a shared lock on the lease row, so a takeover (which updates that row) waits for the
/// write to commit, or the write sees the takeover and stores nothing. An evaluator that
/// stalled past its lease therefore cannot write, or claim a notification, after its
/// successor began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence<'a> {
    /// The lease's name.
    pub lease: &'a str,
    /// Who must hold it.
    pub holder: &'a str,
}

/// One alert instance by rule and series, for [`Store::forget_alert_instances`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceRef<'a> {
    /// The rule.
    pub rule_id: i64,
    /// The series' agent; `None` (or empty) when it has none.
    pub agent_id: Option<&'a str>,
    /// The series' tags.
    pub tags: &'a BTreeMap<String, String>,
}

/// One evaluation step of one alert instance, for [`Store::record_alert_steps`]: the
/// instance's new state, the transition to append to the history (if any) and the
/// notifications to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertStep<'a> {
    /// Owning tenant; the rule must be this tenant's.
    pub tenant_id: i64,
    /// The rule.
    pub rule_id: i64,
    /// The rule's name, for the history.
    pub rule_name: &'a str,
    /// The series' agent; `None` (or empty) when it has none.
    pub agent_id: Option<&'a str>,
    /// The series' tags.
    pub tags: &'a BTreeMap<String, String>,
    /// The state entered or kept.
    pub state: AlertState,
    /// The breached severity while pending or firing.
    pub severity: Option<Severity>,
    /// When `state` was entered, Unix milliseconds.
    pub since_ms: i64,
    /// The latest evaluated value; `None` for no data.
    pub value: Option<f64>,
    /// The evaluator's full state of the instance, returned as is by
    /// [`Store::all_alert_instances`].
    pub state_json: &'a str,
    /// The history entry, if the state (or a firing severity) changed.
    pub event: Option<NewEvent>,
    /// Notifications to queue; those for channels the tenant no longer has are left out.
    pub notifications: Vec<NewNotification>,
    /// The evaluation time: when the notifications are queued and first due.
    pub now_ms: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = alert_rules)]
struct RuleRow {
    id: i64,
    tenant_id: i64,
    definition: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl RuleRow {
    fn into_stored(self) -> Result<StoredRule, StoreError> {
        Ok(StoredRule {
            id: self.id,
            tenant_id: self.tenant_id,
            rule: serde_json::from_str(&self.definition).map_err(StoreError::corrupt)?,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = alert_rules)]
struct NewRule<'a> {
    tenant_id: i64,
    name: &'a str,
    definition: &'a str,
    enabled: i32,
    created_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = alert_channels)]
struct ChannelRow {
    id: i64,
    tenant_id: i64,
    definition: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl ChannelRow {
    fn into_stored(self) -> Result<StoredChannel, StoreError> {
        Ok(StoredChannel {
            id: self.id,
            tenant_id: self.tenant_id,
            channel: serde_json::from_str(&self.definition).map_err(StoreError::corrupt)?,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = alert_channels)]
struct NewChannel<'a> {
    tenant_id: i64,
    name: &'a str,
    kind: String,
    definition: &'a str,
    created_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = alert_instances)]
struct InstanceDbRow {
    tenant_id: i64,
    rule_id: i64,
    agent_id: Option<String>,
    tags: String,
    state: String,
    severity: Option<String>,
    since_ms: i64,
    value: Option<f64>,
    state_json: String,
}

impl InstanceDbRow {
    fn into_row(self) -> Result<InstanceRow, StoreError> {
        Ok(InstanceRow {
            tenant_id: self.tenant_id,
            rule_id: self.rule_id,
            agent_id: self.agent_id,
            tags: serde_json::from_str(&self.tags).map_err(StoreError::corrupt)?,
            state: from_text(self.state)?,
            severity: self.severity.map(from_text).transpose()?,
            since_ms: self.since_ms,
            value: self.value,
            state_json: self.state_json,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = alert_instances)]
struct NewInstance<'a> {
    rule_id: i64,
    instance_key: String,
    tenant_id: i64,
    agent_id: Option<&'a str>,
    tags: String,
    state: String,
    severity: Option<String>,
    since_ms: i64,
    value: Option<f64>,
    state_json: &'a str,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = alert_events)]
struct EventDbRow {
    id: i64,
    tenant_id: i64,
    rule_id: i64,
    rule_name: String,
    agent_id: Option<String>,
    tags: String,
    from_state: String,
    to_state: String,
    severity: Option<String>,
    value: Option<f64>,
    at_ms: i64,
}

impl EventDbRow {
    fn into_row(self) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            id: self.id,
            tenant_id: self.tenant_id,
            rule_id: self.rule_id,
            rule_name: self.rule_name,
            agent_id: self.agent_id,
            tags: serde_json::from_str(&self.tags).map_err(StoreError::corrupt)?,
            from: from_text(self.from_state)?,
            to: from_text(self.to_state)?,
            severity: self.severity.map(from_text).transpose()?,
            value: self.value,
            at_ms: self.at_ms,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = alert_events)]
struct NewEventRow<'a> {
    tenant_id: i64,
    rule_id: i64,
    rule_name: &'a str,
    agent_id: Option<&'a str>,
    tags: String,
    from_state: String,
    to_state: String,
    severity: Option<String>,
    value: Option<f64>,
    at_ms: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = alert_notifications)]
struct NotificationDbRow {
    id: i64,
    tenant_id: i64,
    channel_id: i64,
    rule_id: Option<i64>,
    agent_id: Option<String>,
    kind: String,
    payload: String,
    status: String,
    attempts: i32,
    next_attempt_ms: i64,
    last_error: Option<String>,
    http_status: Option<i32>,
    created_at_ms: i64,
    sent_at_ms: Option<i64>,
}

impl NotificationDbRow {
    fn into_row(self) -> Result<NotificationRow, StoreError> {
        Ok(NotificationRow {
            id: self.id,
            tenant_id: self.tenant_id,
            channel_id: self.channel_id,
            rule_id: self.rule_id,
            agent_id: self.agent_id,
            kind: from_text(self.kind)?,
            payload: self.payload,
            status: from_text(self.status)?,
            // Written from a u32 and only ever incremented.
            attempts: u32::try_from(self.attempts).unwrap_or_default(),
            next_attempt_ms: self.next_attempt_ms,
            last_error: self.last_error,
            // Written from a u16.
            http_status: self.http_status.and_then(|s| u16::try_from(s).ok()),
            created_at_ms: self.created_at_ms,
            sent_at_ms: self.sent_at_ms,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = alert_notifications)]
struct NewNotificationRow<'a> {
    tenant_id: i64,
    channel_id: i64,
    rule_id: Option<i64>,
    agent_id: Option<&'a str>,
    kind: String,
    payload: &'a str,
    status: String,
    attempts: i32,
    next_attempt_ms: i64,
    created_at_ms: i64,
}

impl<'a> NewNotificationRow<'a> {
    fn queued(tenant_id: i64, n: &'a NewNotification, now_ms: i64) -> Self {
        NewNotificationRow {
            tenant_id,
            channel_id: n.channel_id,
            rule_id: n.rule_id,
            agent_id: n.agent_id.as_deref().filter(|a| !a.is_empty()),
            kind: to_text(&n.kind),
            payload: &n.payload,
            status: to_text(&NotificationStatus::Pending),
            attempts: 0,
            next_attempt_ms: now_ms,
            created_at_ms: now_ms,
        }
    }
}

/// What `SELECT last_insert_rowid()` / `LAST_INSERT_ID()` answer.
#[derive(QueryableByName)]
struct InsertedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The id the connection's latest insert gave its row.
fn last_insert_id_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SELECT last_insert_rowid() AS id",
        Backend::Mysql => "SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS id",
    }
}

/// A row's id and tenant.
#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    tenant_id: i64,
}

/// A count, from raw SQL.
#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The database server's current time in Unix milliseconds, as SQL. Leases compare against
/// it, so processes on hosts whose clocks disagree still agree on who holds one.
fn db_now_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Backend::Mysql => "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)",
    }
}

/// Whether the fence's holder holds its lease now (binds: name, holder); on MariaDB under a
/// shared lock on the lease row until the commit.
fn fence_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Mysql => " LOCK IN SHARE MODE",
    };
    format!(
        "SELECT COUNT(*) AS n FROM leases WHERE name = ? AND holder = ? AND expires_at_ms > {}{lock}",
        db_now_sql(backend)
    )
}

/// Check a [`Fence`] inside a write's transaction: [`StoreError::is_lease_lost`] (and the
/// transaction rolls back) when its holder no longer holds the lease.
macro_rules! check_fence {
    ($conn:expr, $sql:expr, $fence:expr) => {{
        let held: Count = diesel::sql_query($sql)
            .bind::<diesel::sql_types::Text, _>($fence.lease)
            .bind::<diesel::sql_types::Text, _>($fence.holder)
            .get_result($conn)
            .await?;
        if held.n == 0 {
            return Err(StoreError::lease_lost(format!("{} is not held by {}", $fence.lease, $fence.holder)).into());
        }
    }};
}

/// `SELECT id, tenant_id` of the rows of `table` with one of `ids`, a statement per chunk;
/// on MariaDB under a shared lock, which keeps them from being deleted until the commit.
/// Only numbers go into the text.
fn owners_sql(table: &str, ids: &[i64], backend: Backend) -> Vec<String> {
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Mysql => " LOCK IN SHARE MODE",
    };
    ids.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            format!("SELECT id, tenant_id FROM {table} WHERE id IN ({}){lock}", list.join(","))
        })
        .collect()
}

/// The spelling serde gives a unit enum variant, which is the API's (core tests it).
fn to_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        // Only unit enums of core's API are stored this way; they serialise as strings.
        other => other.map(|v| v.to_string()).unwrap_or_default(),
    }
}

/// The enum variant a column spells as `to_text` wrote it.
fn from_text<T: DeserializeOwned>(text: String) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(StoreError::corrupt)
}

/// Hex SHA-256 of an instance's agent and tags: its fixed-width key within the rule. An
/// empty agent is none, as the matcher reads it.
fn instance_key(agent_id: Option<&str>, tags: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    // Serialising a string and a string map cannot fail; the map's keys come sorted.
    let canonical = serde_json::to_string(&(agent_id.filter(|a| !a.is_empty()), tags)).unwrap_or_default();
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn tags_text(tags: &BTreeMap<String, String>) -> String {
    microdash_core::metric::canonical_tags(tags)
}

/// MariaDB cannot store an infinite or NaN double; such a value is kept as none.
fn storable(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

/// At most [`MAX_NOTIFICATION_ERROR_CHARS`] characters of `error`.
fn bounded_error(error: &str) -> String {
    error.chars().take(MAX_NOTIFICATION_ERROR_CHARS).collect()
}

fn check_lease_names(name: &str, holder: &str) -> Result<(), StoreError> {
    for (what, value, max) in
        [("lease name", name, MAX_LEASE_NAME_CHARS), ("lease holder", holder, MAX_LEASE_HOLDER_CHARS)]
    {
        if value.is_empty() || value.chars().count() > max {
            return Err(StoreError::invalid(format!("a {what} needs 1 to {max} characters")));
        }
    }
    Ok(())
}

/// Bump the rules' revision; inside the transaction of the change.
macro_rules! bump_revision {
    ($conn:expr) => {
        diesel::update(alert_rules_revision::table.filter(alert_rules_revision::id.eq(1)))
            .set(alert_rules_revision::revision.eq(alert_rules_revision::revision + 1))
            .execute($conn)
            .await
    };
}

/// The id the connection's latest insert gave its row.
macro_rules! last_insert_id {
    ($conn:expr, $backend:expr) => {
        diesel::sql_query(last_insert_id_sql($backend)).get_result::<InsertedId>($conn).await.map(|row| row.id)
    };
}

/// Of `ids`, those that are channels of `tenant_id`, ascending.
macro_rules! tenant_channels {
    ($conn:expr, $tenant_id:expr, $ids:expr) => {{
        let ids: &[i64] = $ids;
        let mut found: Vec<i64> = Vec::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let part: Vec<i64> = alert_channels::table
                .filter(alert_channels::tenant_id.eq($tenant_id))
                .filter(alert_channels::id.eq_any(chunk.to_vec()))
                .select(alert_channels::id)
                .load($conn)
                .await?;
            found.extend(part);
        }
        found.sort_unstable();
        found.dedup();
        found
    }};
}

/// `Err(Invalid)` unless every channel a rule lists is one of the tenant's.
macro_rules! check_rule_channels {
    ($conn:expr, $tenant_id:expr, $rule:expr) => {{
        let rule: &AlertRule = $rule;
        let found = tenant_channels!($conn, $tenant_id, &rule.channels);
        if let Some(missing) = rule.channels.iter().find(|id| found.binary_search(id).is_err()) {
            return Err(StoreError::invalid(format!("channel {missing} does not exist")).into());
        }
    }};
}

impl Store {
    /// Store a new rule of a tenant. Every channel it lists must be one of the tenant's
    /// ([`ErrorKind::Invalid`](microdash_core::ErrorKind::Invalid) otherwise). Bumps the rules' revision.
    pub async fn create_alert_rule(
        &self,
        tenant_id: i64,
        rule: &AlertRule,
        now_ms: i64,
    ) -> Result<StoredRule, StoreError> {
        let definition = serde_json::to_string(rule).map_err(StoreError::corrupt)?;
        let row = NewRule {
            tenant_id,
            name: &rule.name,
            definition: &definition,
            enabled: i32::from(rule.enabled),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        let backend = self.backend();
        let id = write_with!(self, transaction, |conn| {
            check_rule_channels!(conn, tenant_id, rule);
            diesel::insert_into(alert_rules::table).values(&row).execute(conn).await?;
            let id = last_insert_id!(conn, backend)?;
            bump_revision!(conn)?;
            Ok(id)
        })?;
        Ok(StoredRule { id, tenant_id, rule: rule.clone(), created_at_ms: now_ms, updated_at_ms: now_ms })
    }

    /// A tenant's rules, oldest first.
    pub async fn alert_rules(&self, tenant_id: i64) -> Result<Vec<StoredRule>, StoreError> {
        let rows: Vec<RuleRow> = with_conn!(self, |conn| alert_rules::table
            .filter(alert_rules::tenant_id.eq(tenant_id))
            .select(RuleRow::as_select())
            .order(alert_rules::id)
            .load(&mut conn)
            .await?);
        rows.into_iter().map(RuleRow::into_stored).collect()
    }

    /// One rule of a tenant; `None` if the tenant has no rule `id`.
    pub async fn alert_rule(&self, tenant_id: i64, id: i64) -> Result<Option<StoredRule>, StoreError> {
        let row: Option<RuleRow> = with_conn!(self, |conn| alert_rules::table
            .filter(alert_rules::tenant_id.eq(tenant_id))
            .filter(alert_rules::id.eq(id))
            .select(RuleRow::as_select())
            .first(&mut conn)
            .await
            .optional()?);
        row.map(RuleRow::into_stored).transpose()
    }

    /// Replace a tenant's rule whole; `None` (and nothing changed) if the tenant has no rule
    /// `id`. Its channels are checked as on create. The rule's instances are kept: the
    /// evaluator carries them over to the new definition. Bumps the rules' revision.
    pub async fn update_alert_rule(
        &self,
        tenant_id: i64,
        id: i64,
        rule: &AlertRule,
        now_ms: i64,
    ) -> Result<Option<StoredRule>, StoreError> {
        let definition = serde_json::to_string(rule).map_err(StoreError::corrupt)?;
        let created_at_ms: Option<i64> = write_with!(self, transaction, |conn| {
            let target = alert_rules::table.filter(alert_rules::tenant_id.eq(tenant_id)).filter(alert_rules::id.eq(id));
            let created: Option<i64> = target.select(alert_rules::created_at_ms).first(conn).await.optional()?;
            let Some(created) = created else {
                return Ok(None);
            };
            check_rule_channels!(conn, tenant_id, rule);
            let changed = diesel::update(target)
                .set((
                    alert_rules::name.eq(&rule.name),
                    alert_rules::definition.eq(&definition),
                    alert_rules::enabled.eq(i32::from(rule.enabled)),
                    alert_rules::updated_at_ms.eq(now_ms),
                ))
                .execute(conn)
                .await?;
            // Deleted meanwhile by a transaction the read above did not wait for (MariaDB).
            if changed == 0 {
                return Ok(None);
            }
            bump_revision!(conn)?;
            Ok(Some(created))
        })?;
        Ok(created_at_ms.map(|created_at_ms| StoredRule {
            id,
            tenant_id,
            rule: rule.clone(),
            created_at_ms,
            updated_at_ms: now_ms,
        }))
    }

    /// Delete a tenant's rule and its instances (its history and notifications stay).
    /// Returns whether the tenant had rule `id`. Bumps the rules' revision.
    pub async fn delete_alert_rule(&self, tenant_id: i64, id: i64) -> Result<bool, StoreError> {
        write_with!(self, transaction, |conn| {
            let rule = alert_rules::table.filter(alert_rules::tenant_id.eq(tenant_id)).filter(alert_rules::id.eq(id));
            let exists: Option<i64> = rule.select(alert_rules::id).first(conn).await.optional()?;
            if exists.is_none() {
                return Ok(false);
            }
            // The rule first, its instances after (the foreign key's cascade has already
            // taken them; this is for a SQLite connection without foreign keys): the same
            // order in which `record_alert_steps` locks them on MariaDB, so the two never
            // deadlock.
            let deleted = diesel::delete(rule).execute(conn).await?;
            if deleted == 0 {
                return Ok(false);
            }
            diesel::delete(
                alert_instances::table
                    .filter(alert_instances::tenant_id.eq(tenant_id))
                    .filter(alert_instances::rule_id.eq(id)),
            )
            .execute(conn)
            .await?;
            bump_revision!(conn)?;
            Ok(true)
        })
    }

    /// Every tenant's rules, enabled or not, by id: what the evaluator runs.
    pub async fn all_alert_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        let rows: Vec<RuleRow> = with_conn!(self, |conn| alert_rules::table
            .select(RuleRow::as_select())
            .order(alert_rules::id)
            .load(&mut conn)
            .await?);
        rows.into_iter().map(RuleRow::into_stored).collect()
    }

    /// A number that changes with every committed change to any tenant's rules (create,
    /// update, delete, and channel deletions, which edit rules): an evaluator polls it and
    /// reloads the rules only when it moved.
    pub async fn alert_rules_revision(&self) -> Result<i64, StoreError> {
        let revision: Option<i64> = with_conn!(self, |conn| alert_rules_revision::table
            .filter(alert_rules_revision::id.eq(1))
            .select(alert_rules_revision::revision)
            .first(&mut conn)
            .await
            .optional()?);
        revision.ok_or_else(|| StoreError::not_found("alert rules revision".into()))
    }

    /// Store a new channel of a tenant.
    pub async fn create_channel(
        &self,
        tenant_id: i64,
        channel: &NamedChannel,
        now_ms: i64,
    ) -> Result<StoredChannel, StoreError> {
        let definition = serde_json::to_string(channel).map_err(StoreError::corrupt)?;
        let row = NewChannel {
            tenant_id,
            name: &channel.name,
            kind: to_text(&channel.channel.kind()),
            definition: &definition,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        let backend = self.backend();
        let id = write_with!(self, transaction, |conn| {
            diesel::insert_into(alert_channels::table).values(&row).execute(conn).await?;
            Ok(last_insert_id!(conn, backend)?)
        })?;
        Ok(StoredChannel { id, tenant_id, channel: channel.clone(), created_at_ms: now_ms, updated_at_ms: now_ms })
    }

    /// A tenant's channels, oldest first.
    pub async fn channels(&self, tenant_id: i64) -> Result<Vec<StoredChannel>, StoreError> {
        let rows: Vec<ChannelRow> = with_conn!(self, |conn| alert_channels::table
            .filter(alert_channels::tenant_id.eq(tenant_id))
            .select(ChannelRow::as_select())
            .order(alert_channels::id)
            .load(&mut conn)
            .await?);
        rows.into_iter().map(ChannelRow::into_stored).collect()
    }

    /// One channel of a tenant; `None` if the tenant has no channel `id`.
    pub async fn channel(&self, tenant_id: i64, id: i64) -> Result<Option<StoredChannel>, StoreError> {
        let row: Option<ChannelRow> = with_conn!(self, |conn| alert_channels::table
            .filter(alert_channels::tenant_id.eq(tenant_id))
            .filter(alert_channels::id.eq(id))
            .select(ChannelRow::as_select())
            .first(&mut conn)
            .await
            .optional()?);
        row.map(ChannelRow::into_stored).transpose()
    }

    /// Replace a tenant's channel whole (its secret too: carrying a kept secret over is the
    /// caller's); `None` (and nothing changed) if the tenant has no channel `id`.
    pub async fn update_channel(
        &self,
        tenant_id: i64,
        id: i64,
        channel: &NamedChannel,
        now_ms: i64,
    ) -> Result<Option<StoredChannel>, StoreError> {
        let definition = serde_json::to_string(channel).map_err(StoreError::corrupt)?;
        let kind = to_text(&channel.channel.kind());
        let created_at_ms: Option<i64> = write_with!(self, transaction, |conn| {
            let target =
                alert_channels::table.filter(alert_channels::tenant_id.eq(tenant_id)).filter(alert_channels::id.eq(id));
            let created: Option<i64> = target.select(alert_channels::created_at_ms).first(conn).await.optional()?;
            let Some(created) = created else {
                return Ok(None);
            };
            let changed = diesel::update(target)
                .set((
                    alert_channels::name.eq(&channel.name),
                    alert_channels::kind.eq(&kind),
                    alert_channels::definition.eq(&definition),
                    alert_channels::updated_at_ms.eq(now_ms),
                ))
                .execute(conn)
                .await?;
            Ok((changed > 0).then_some(created))
        })?;
        Ok(created_at_ms.map(|created_at_ms| StoredChannel {
            id,
            tenant_id,
            channel: channel.clone(),
            created_at_ms,
            updated_at_ms: now_ms,
        }))
    }

    /// Delete a tenant's channel and its notifications (queued ones are not sent), and take
    /// it out of the tenant's rules that list it, so no rule names a channel that does not
    /// exist. Returns whether the tenant had channel `id`. Bumps the rules' revision.
    pub async fn delete_channel(&self, tenant_id: i64, id: i64) -> Result<bool, StoreError> {
        write_with!(self, transaction, |conn| {
            let channel =
                alert_channels::table.filter(alert_channels::tenant_id.eq(tenant_id)).filter(alert_channels::id.eq(id));
            let exists: Option<i64> = channel.select(alert_channels::id).first(conn).await.optional()?;
            if exists.is_none() {
                return Ok(false);
            }
            // The channel first, then its notifications (already gone by the foreign key's
            // cascade, unless SQLite runs without foreign keys), then the rules: the order in
            // which `record_alert_steps` locks channels and rules on MariaDB, so the two never
            // deadlock.
            let deleted = diesel::delete(channel).execute(conn).await?;
            if deleted == 0 {
                return Ok(false);
            }
            diesel::delete(
                alert_notifications::table
                    .filter(alert_notifications::tenant_id.eq(tenant_id))
                    .filter(alert_notifications::channel_id.eq(id)),
            )
            .execute(conn)
            .await?;
            let rules: Vec<RuleRow> = alert_rules::table
                .filter(alert_rules::tenant_id.eq(tenant_id))
                .select(RuleRow::as_select())
                .load(conn)
                .await?;
            for row in rules {
                let rule_id = row.id;
                let mut stored = row.into_stored()?;
                if !stored.rule.channels.contains(&id) {
                    continue;
                }
                stored.rule.channels.retain(|c| *c != id);
                let definition = serde_json::to_string(&stored.rule)?;
                diesel::update(alert_rules::table.filter(alert_rules::id.eq(rule_id)))
                    .set(alert_rules::definition.eq(definition))
                    .execute(conn)
                    .await?;
            }
            bump_revision!(conn)?;
            Ok(true)
        })
    }

    /// Of `ids`, those that are channels of `tenant_id`, ascending and each once: to check
    /// that a rule names only its tenant's channels.
    pub async fn existing_channel_ids(&self, tenant_id: i64, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        Ok(with_conn!(self, |conn| {
            let conn = &mut *conn;
            tenant_channels!(conn, tenant_id, ids)
        }))
    }

    /// A tenant's alert instances, optionally only those in `state`, by rule.
    pub async fn alert_instances(
        &self,
        tenant_id: i64,
        state: Option<AlertState>,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        let state = state.map(|s| to_text(&s));
        let rows: Vec<InstanceDbRow> = with_conn!(self, |conn| {
            let mut query = alert_instances::table
                .filter(alert_instances::tenant_id.eq(tenant_id))
                .select(InstanceDbRow::as_select())
                .order((alert_instances::rule_id, alert_instances::instance_key))
                .into_boxed();
            if let Some(state) = &state {
                query = query.filter(alert_instances::state.eq(state.clone()));
            }
            query.load(&mut conn).await?
        });
        rows.into_iter().map(InstanceDbRow::into_row).collect()
    }

    /// Every tenant's alert instances, by rule: what an evaluator resumes from after a
    /// restart or when it takes the lease over.
    pub async fn all_alert_instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let rows: Vec<InstanceDbRow> = with_conn!(self, |conn| alert_instances::table
            .select(InstanceDbRow::as_select())
            .order((alert_instances::rule_id, alert_instances::instance_key))
            .load(&mut conn)
            .await?);
        rows.into_iter().map(InstanceDbRow::into_row).collect()
    }

    /// Record one evaluation step of one instance ([`Store::record_alert_steps`] with one
    /// step). Returns the ids of the notifications queued; [`ErrorKind::NotFound`](microdash_core::ErrorKind::NotFound) if the
    /// tenant has no such rule (any more), and then nothing was stored.
    pub async fn record_alert_step(&self, fence: Fence<'_>, step: &AlertStep<'_>) -> Result<Vec<i64>, StoreError> {
        match self.record_alert_steps(fence, std::slice::from_ref(step)).await?.pop().flatten() {
            Some(ids) => Ok(ids),
            None => Err(StoreError::not_found(format!("alert rule {}", step.rule_id))),
        }
    }

    /// Record evaluation steps, all in one transaction: all of them or none. For each step,
    /// the instance's state replaces the stored one (keyed by rule, agent and tags), its
    /// transition is appended to the history, and its notifications are queued, pending and
    /// due at the step's `now_ms`. So a crash never leaves a transition without its
    /// notifications, nor a notification for a transition that was not stored.
    ///
    /// Per step, in order: the ids of the notifications queued, or `None` when the step's
    /// tenant has no such rule (deleted meanwhile), and nothing of that step was stored.
    /// Notifications for channels the tenant no longer has are left out; one naming a rule
    /// other than its step's is refused ([`ErrorKind::Invalid`](microdash_core::ErrorKind::Invalid), nothing stored), and so is
    /// everything when `fence`'s holder no longer holds its lease ([`StoreError::is_lease_lost`]).
    pub async fn record_alert_steps(
        &self,
        fence: Fence<'_>,
        steps: &[AlertStep<'_>],
    ) -> Result<Vec<Option<Vec<i64>>>, StoreError> {
        if let Some(bad) =
            steps.iter().find(|s| s.notifications.iter().any(|n| n.rule_id.is_some_and(|r| r != s.rule_id)))
        {
            return Err(StoreError::invalid(format!(
                "a notification of rule {}'s step names another rule",
                bad.rule_id
            )));
        }
        let rule_ids: Vec<i64> = steps.iter().map(|s| s.rule_id).collect::<BTreeSet<_>>().into_iter().collect();
        let channel_ids: Vec<i64> = steps
            .iter()
            .flat_map(|s| s.notifications.iter().map(|n| n.channel_id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        // Who owns the channels and rules, read under a shared lock on MariaDB (on SQLite
        // nothing else writes before the commit): a channel or rule cannot be deleted
        // between this read and the rows below that refer to it. Channels before rules,
        // the order `delete_channel` takes them in.
        let channel_owners = owners_sql("alert_channels", &channel_ids, backend);
        let rule_owners = owners_sql("alert_rules", &rule_ids, backend);
        let fence_check = fence_sql(backend);
        write_with!(self, transaction, |conn| {
            check_fence!(&mut *conn, &fence_check, fence);
            let mut channel_owner: HashMap<i64, i64> = HashMap::new();
            for sql in &channel_owners {
                let owned: Vec<Owner> = diesel::sql_query(sql).load(conn).await?;
                channel_owner.extend(owned.into_iter().map(|o| (o.id, o.tenant_id)));
            }
            let mut rule_owner: HashMap<i64, i64> = HashMap::new();
            for sql in &rule_owners {
                let owned: Vec<Owner> = diesel::sql_query(sql).load(conn).await?;
                rule_owner.extend(owned.into_iter().map(|o| (o.id, o.tenant_id)));
            }
            let mut recorded = Vec::with_capacity(steps.len());
            for step in steps {
                if rule_owner.get(&step.rule_id) != Some(&step.tenant_id) {
                    recorded.push(None);
                    continue;
                }
                let agent_id = step.agent_id.filter(|a| !a.is_empty());
                let instance = NewInstance {
                    rule_id: step.rule_id,
                    instance_key: instance_key(agent_id, step.tags),
                    tenant_id: step.tenant_id,
                    agent_id,
                    tags: tags_text(step.tags),
                    state: to_text(&step.state),
                    severity: step.severity.as_ref().map(to_text),
                    since_ms: step.since_ms,
                    value: storable(step.value),
                    state_json: step.state_json,
                };
                diesel::replace_into(alert_instances::table).values(&instance).execute(conn).await?;
                if let Some(event) = &step.event {
                    let row = NewEventRow {
                        tenant_id: step.tenant_id,
                        rule_id: step.rule_id,
                        rule_name: step.rule_name,
                        agent_id,
                        tags: instance.tags.clone(),
                        from_state: to_text(&event.from),
                        to_state: to_text(&event.to),
                        severity: event.severity.as_ref().map(to_text),
                        value: storable(event.value),
                        at_ms: event.at_ms,
                    };
                    diesel::insert_into(alert_events::table).values(&row).execute(conn).await?;
                }
                let mut queued = Vec::with_capacity(step.notifications.len());
                for notification in &step.notifications {
                    if channel_owner.get(&notification.channel_id) != Some(&step.tenant_id) {
                        continue;
                    }
                    let row = NewNotificationRow::queued(step.tenant_id, notification, step.now_ms);
                    // One row per statement, so each id is known on both backends.
                    diesel::insert_into(alert_notifications::table).values(&row).execute(conn).await?;
                    queued.push(last_insert_id!(conn, backend)?);
                }
                recorded.push(Some(queued));
            }
            Ok(recorded)
        })
    }

    /// Queue one notification outside any evaluation (a "send test notification"), pending
    /// and due at `now_ms`; returns its id. [`ErrorKind::NotFound`](microdash_core::ErrorKind::NotFound) if the channel (or the
    /// rule it names) is not the tenant's.
    pub async fn enqueue_notification(
        &self,
        tenant_id: i64,
        notification: &NewNotification,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = NewNotificationRow::queued(tenant_id, notification, now_ms);
        let backend = self.backend();
        write_with!(self, transaction, |conn| {
            let channel: Option<i64> = alert_channels::table
                .filter(alert_channels::tenant_id.eq(tenant_id))
                .filter(alert_channels::id.eq(notification.channel_id))
                .select(alert_channels::id)
                .first(conn)
                .await
                .optional()?;
            if channel.is_none() {
                return Err(StoreError::not_found(format!("channel {}", notification.channel_id)).into());
            }
            if let Some(rule_id) = notification.rule_id {
                let rule: Option<i64> = alert_rules::table
                    .filter(alert_rules::tenant_id.eq(tenant_id))
                    .filter(alert_rules::id.eq(rule_id))
                    .select(alert_rules::id)
                    .first(conn)
                    .await
                    .optional()?;
                if rule.is_none() {
                    return Err(StoreError::not_found(format!("alert rule {rule_id}")).into());
                }
            }
            diesel::insert_into(alert_notifications::table).values(&row).execute(conn).await?;
            Ok(last_insert_id!(conn, backend)?)
        })
    }

    /// Up to `limit` pending notifications of every tenant that are due at `now_ms`, the
    /// longest due first: what the sender delivers next. Only one process should send
    /// (it holds a lease); another would deliver the same notifications again.
    pub async fn due_notifications(&self, now_ms: i64, limit: usize) -> Result<Vec<NotificationRow>, StoreError> {
        let pending = to_text(&NotificationStatus::Pending);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<NotificationDbRow> = with_conn!(self, |conn| alert_notifications::table
            .filter(alert_notifications::status.eq(&pending))
            .filter(alert_notifications::next_attempt_ms.le(now_ms))
            .select(NotificationDbRow::as_select())
            .order((alert_notifications::next_attempt_ms, alert_notifications::id))
            .limit(limit)
            .load(&mut conn)
            .await?);
        rows.into_iter().map(NotificationDbRow::into_row).collect()
    }

    /// Claim up to `limit` due pending notifications for delivery, the longest due first,
    /// leaving out `busy` (those this sender is still sending): each is put off until
    /// `now_ms + claim_ms`, so no one takes it again while it is being sent, and if the
    /// sender dies before recording the attempt it is sent again once the claim runs out.
    /// The returned rows carry that time as `next_attempt_ms`: the claim, which
    /// [`Store::record_attempt`] must name. Fenced by the sender's lease: a sender that lost
    /// it claims nothing ([`StoreError::is_lease_lost`]).
    pub async fn claim_due_notifications(
        &self,
        fence: Fence<'_>,
        now_ms: i64,
        limit: usize,
        claim_ms: i64,
        busy: &[i64],
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let pending = to_text(&NotificationStatus::Pending);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let until_ms = now_ms.saturating_add(claim_ms.max(1));
        let fence_check = fence_sql(self.backend());
        let rows: Vec<NotificationDbRow> = write_with!(self, transaction, |conn| {
            check_fence!(&mut *conn, &fence_check, fence);
            let mut rows: Vec<NotificationDbRow> = alert_notifications::table
                .filter(alert_notifications::status.eq(&pending))
                .filter(alert_notifications::next_attempt_ms.le(now_ms))
                .filter(alert_notifications::id.ne_all(busy))
                .select(NotificationDbRow::as_select())
                .order((alert_notifications::next_attempt_ms, alert_notifications::id))
                .limit(limit)
                .load(conn)
                .await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            if !ids.is_empty() {
                diesel::update(
                    alert_notifications::table
                        .filter(alert_notifications::id.eq_any(&ids))
                        .filter(alert_notifications::status.eq(&pending)),
                )
                .set(alert_notifications::next_attempt_ms.eq(until_ms))
                .execute(conn)
                .await?;
            }
            for row in &mut rows {
                row.next_attempt_ms = until_ms;
            }
            Ok(rows)
        })?;
        rows.into_iter().map(NotificationDbRow::into_row).collect()
    }

    /// Delete the stored state of these instances where it is `ok`: the evaluator forgets a
    /// series that stopped reporting long ago, so neither its memory nor the next leader's
    /// resume grows with every host that ever existed. An instance in any other state is
    /// kept. Fenced like [`Store::record_alert_steps`]. Returns the rows deleted.
    pub async fn forget_alert_instances(
        &self,
        fence: Fence<'_>,
        instances: &[InstanceRef<'_>],
    ) -> Result<u64, StoreError> {
        if instances.is_empty() {
            return Ok(0);
        }
        let ok = to_text(&AlertState::Ok);
        let keys: Vec<(i64, String)> =
            instances.iter().map(|i| (i.rule_id, instance_key(i.agent_id, i.tags))).collect();
        let fence_check = fence_sql(self.backend());
        write_with!(self, transaction, |conn| {
            check_fence!(&mut *conn, &fence_check, fence);
            let mut deleted = 0;
            for (rule_id, key) in &keys {
                deleted += diesel::delete(
                    alert_instances::table
                        .filter(alert_instances::rule_id.eq(rule_id))
                        .filter(alert_instances::instance_key.eq(key))
                        .filter(alert_instances::state.eq(&ok)),
                )
                .execute(conn)
                .await? as u64;
            }
            Ok(deleted)
        })
    }

    /// The database server's clock, Unix milliseconds: what leases are taken and checked
    /// against, so processes whose own clocks disagree still agree on a lease.
    pub async fn clock_ms(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT {} AS n", db_now_sql(self.backend()));
        let now: Count = with_conn!(self, |conn| diesel::sql_query(&sql).get_result(&mut conn).await?);
        Ok(now.n)
    }

    /// Record a delivery attempt of a pending notification at `now_ms`: one more attempt,
    /// and the status, error, HTTP status and times `outcome` says, only while its
    /// `next_attempt_ms` is still `claim` (the one the sender's row had, from
    /// [`Store::claim_due_notifications`]): a sender whose claim ran out and was taken over
    /// records nothing, so a late answer cannot undo its successor's. Returns whether it was
    /// recorded; a notification already sent or failed is left as it is.
    pub async fn record_attempt(
        &self,
        id: i64,
        claim: i64,
        outcome: &AttemptOutcome,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (status, next_attempt_ms, error, http_status, sent_at_ms) = match outcome {
            AttemptOutcome::Sent { http_status } => {
                (NotificationStatus::Sent, now_ms, None, *http_status, Some(now_ms))
            }
            AttemptOutcome::Retry { error, http_status, next_attempt_ms } => {
                (NotificationStatus::Pending, *next_attempt_ms, Some(bounded_error(error)), *http_status, None)
            }
            AttemptOutcome::Failed { error, http_status } => {
                (NotificationStatus::Failed, now_ms, Some(bounded_error(error)), *http_status, None)
            }
        };
        let pending = to_text(&NotificationStatus::Pending);
        let changes = (
            alert_notifications::status.eq(to_text(&status)),
            alert_notifications::attempts.eq(alert_notifications::attempts + 1),
            alert_notifications::next_attempt_ms.eq(next_attempt_ms),
            alert_notifications::last_error.eq(error),
            alert_notifications::http_status.eq(http_status.map(i32::from)),
            alert_notifications::sent_at_ms.eq(sent_at_ms),
        );
        let target = alert_notifications::table
            .filter(alert_notifications::id.eq(id))
            .filter(alert_notifications::status.eq(pending))
            .filter(alert_notifications::next_attempt_ms.eq(claim));
        let changed =
            write_with!(self, autocommit, |conn| Ok(diesel::update(target).set(changes).execute(conn).await?))?;
        Ok(changed > 0)
    }

    /// A tenant's notification log, newest first, at most `limit` entries; only one channel's
    /// when `channel_id` is given.
    pub async fn notifications(
        &self,
        tenant_id: i64,
        channel_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<NotificationDbRow> = with_conn!(self, |conn| {
            let mut query = alert_notifications::table
                .filter(alert_notifications::tenant_id.eq(tenant_id))
                .select(NotificationDbRow::as_select())
                .order(alert_notifications::id.desc())
                .limit(limit)
                .into_boxed();
            if let Some(channel_id) = channel_id {
                query = query.filter(alert_notifications::channel_id.eq(channel_id));
            }
            query.load(&mut conn).await?
        });
        rows.into_iter().map(NotificationDbRow::into_row).collect()
    }

    /// A tenant's alert history, newest first (by time, then by insertion).
    pub async fn alert_events(&self, tenant_id: i64, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let rows: Vec<EventDbRow> = with_conn!(self, |conn| {
            let mut query = alert_events::table
                .filter(alert_events::tenant_id.eq(tenant_id))
                .select(EventDbRow::as_select())
                .order((alert_events::at_ms.desc(), alert_events::id.desc()))
                .limit(limit)
                .into_boxed();
            if let Some(start_ms) = filter.start_ms {
                query = query.filter(alert_events::at_ms.ge(start_ms));
            }
            if let Some(end_ms) = filter.end_ms {
                query = query.filter(alert_events::at_ms.lt(end_ms));
            }
            if let Some(rule_id) = filter.rule_id {
                query = query.filter(alert_events::rule_id.eq(rule_id));
            }
            if let Some(agent_id) = &filter.agent_id {
                query = query.filter(alert_events::agent_id.eq(agent_id.clone()));
            }
            query.load(&mut conn).await?
        });
        rows.into_iter().map(EventDbRow::into_row).collect()
    }

    /// Take the lease `name` for `holder` until `now_ms + ttl_ms` if it is free, expired
    /// (`expires_at <= now_ms`) or already `holder`'s (a renewal). Returns whether `holder`
    /// now holds it. Atomic against any number of processes racing for it: one conditional
    /// `UPDATE` (renew or take over), else an insert that only one of them can make.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        check_lease_names(name, holder)?;
        if ttl_ms <= 0 {
            return Err(StoreError::invalid(format!("a lease needs a positive ttl, not {ttl_ms} ms")));
        }
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        // Autocommit on MariaDB: in one transaction, two processes finding no row would each
        // hold a gap lock that the other's insert waits for, a deadlock.
        write_with!(self, autocommit, |conn| {
            let taken = diesel::update(
                leases::table
                    .filter(leases::name.eq(name))
                    .filter(leases::holder.eq(holder).or(leases::expires_at_ms.le(now_ms))),
            )
            .set((leases::holder.eq(holder), leases::expires_at_ms.eq(expires_at_ms)))
            .execute(conn)
            .await?;
            if taken > 0 {
                return Ok(true);
            }
            let created = diesel::insert_or_ignore_into(leases::table)
                .values((leases::name.eq(name), leases::holder.eq(holder), leases::expires_at_ms.eq(expires_at_ms)))
                .execute(conn)
                .await?;
            Ok(created > 0)
        })
    }

    /// Give the lease `name` up if `holder` holds it, so another process can take it at once.
    /// Returns whether it did.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let released = write_with!(self, autocommit, |conn| {
            Ok(diesel::delete(leases::table.filter(leases::name.eq(name)).filter(leases::holder.eq(holder)))
                .execute(conn)
                .await?)
        })?;
        Ok(released > 0)
    }

    /// Delete every tenant's alert history entries and delivered or failed notifications
    /// from before `before_ms` (pending ones stay, however old), a chunk of at most
    /// `chunk_rows` rows per statement as [`Store::expire`] does. Returns the rows deleted.
    pub async fn expire_alert_history(&self, before_ms: i64, chunk_rows: usize) -> Result<u64, StoreError> {
        let sqlite = [
            "DELETE FROM alert_events WHERE id IN (SELECT id FROM alert_events WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
            "DELETE FROM alert_notifications WHERE id IN (SELECT id FROM alert_notifications \
             WHERE created_at_ms < ?1 AND status IN ('sent', 'failed') ORDER BY created_at_ms LIMIT ?2)",
        ];
        let mysql = [
            "DELETE FROM alert_events WHERE at_ms < ? ORDER BY at_ms LIMIT ?",
            "DELETE FROM alert_notifications WHERE created_at_ms < ? AND status IN ('sent', 'failed') \
             ORDER BY created_at_ms LIMIT ?",
        ];
        let statements = match self.backend() {
            Backend::Sqlite => sqlite,
            Backend::Mysql => mysql,
        };
        let chunk = i64::try_from(chunk_rows.max(1)).unwrap_or(i64::MAX);
        let mut deleted = 0u64;
        for sql in statements {
            loop {
                let query = diesel::sql_query(sql).bind::<BigInt, _>(before_ms).bind::<BigInt, _>(chunk);
                let done = match &self.inner.pool {
                    // Through the writer, counted towards its WAL restarts, like `expire`.
                    Pool::Sqlite(_) => {
                        self.write_sqlite(chunk_rows, move |c| diesel::RunQueryDsl::execute(query, c)).await?
                    }
                    Pool::Mysql(pool) => {
                        let mut conn = pool.get().await.map_err(StoreError::pool)?;
                        query.execute(&mut conn).await.map_err(StoreError::query)?
                    }
                };
                deleted += done as u64;
                tokio::task::yield_now().await;
                if (done as i64) < chunk {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_key_is_its_agent_and_tags() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let key = instance_key(Some("web-1"), &tags(&[("mount", "/"), ("fs", "ext4")]));
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        // Stable: insertion order of tags does not matter, an empty agent is none.
        assert_eq!(key, instance_key(Some("web-1"), &tags(&[("fs", "ext4"), ("mount", "/")])));
        assert_eq!(instance_key(Some(""), &tags(&[])), instance_key(None, &tags(&[])));
        // Distinct: agent and tags cannot run into each other.
        let distinct = [
            instance_key(None, &tags(&[])),
            instance_key(Some("a"), &tags(&[])),
            instance_key(Some("b"), &tags(&[])),
            instance_key(None, &tags(&[("a", "")])),
            instance_key(Some("a"), &tags(&[("b", "c")])),
            instance_key(Some("a"), &tags(&[("b", "d")])),
        ];
        let unique: BTreeSet<_> = distinct.iter().collect();
        assert_eq!(unique.len(), distinct.len());
    }

    #[test]
    fn enums_are_stored_in_the_api_spelling() {
        assert_eq!(to_text(&AlertState::NoData), "no_data");
        assert_eq!(to_text(&NotificationStatus::Failed), "failed");
        assert_eq!(to_text(&microdash_core::api::alert::ChannelKind::Webhook), "webhook");
        let state: AlertState = from_text("no_data".to_owned()).unwrap_or_default();
        assert_eq!(state, AlertState::NoData);
        assert!(from_text::<Severity>("fatal".to_owned()).is_err());
    }

    #[test]
    fn a_long_error_is_cut_at_a_character() {
        let long = "é".repeat(MAX_NOTIFICATION_ERROR_CHARS + 10);
        assert_eq!(bounded_error(&long).chars().count(), MAX_NOTIFICATION_ERROR_CHARS);
        assert_eq!(bounded_error("short"), "short");
    }
}
