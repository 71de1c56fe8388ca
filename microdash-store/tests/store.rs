//! The same storage tests on every backend, against real databases.
#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

#[macro_use]
mod common;

use microdash_core::metric::parse_metrics;
use microdash_core::token::Scopes;
use microdash_core::{Batch, ErrorKind, Limits};
use microdash_store::testing::TestDb;
use microdash_store::{
    Admission, AttemptKey, AttemptLimit, Backend, Credential, JournalMark, MAX_ATTEMPT_SUBJECT_BYTES, PointQuery,
    Reach, Store,
};
use std::time::Duration;

const NOW: i64 = 1_700_000_000_000;

fn batch(tenant_id: i64, json: &str) -> Batch {
    Batch { tenant_id, received_at_ms: NOW, metrics: parse_metrics(json.as_bytes(), &Limits::default(), NOW).unwrap() }
}

fn all(metric: &str) -> PointQuery {
    PointQuery { metric_name: Some(metric.into()), limit: 1000, ..PointQuery::default() }
}

async fn tenants_and_tokens(store: Store) {
    let acme = store.create_tenant("acme", "Acme", NOW).await.unwrap();
    assert_eq!(acme.slug, "acme");
    assert!(matches!(store.create_tenant("acme", "", NOW).await, Err(e) if e.kind() == ErrorKind::Conflict));
    assert!(matches!(store.create_tenant("Bad Slug", "", NOW).await, Err(e) if e.kind() == ErrorKind::Invalid));
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);

    assert!(!store.has_admin_token().await.unwrap());
    let scopes: Scopes = "ingest,read".parse().unwrap();
    let (info, secret) = store.create_token(Some(acme.id), scopes, "ci", NOW).await.unwrap();
    assert!(secret.starts_with("mdk_") && secret.starts_with(&info.prefix));
    assert_eq!(info.tenant_slug.as_deref(), Some("acme"));
    let principal = store.authenticate(&secret).await.unwrap().expect("fresh token authenticates");
    assert_eq!((principal.tenant_id, principal.scopes), (Some(acme.id), scopes));
    assert!(store.create_token(Some(acme.id), "admin".parse().unwrap(), "x", NOW).await.is_err());
    assert!(store.create_token(None, "read".parse().unwrap(), "x", NOW).await.is_err());
    store.create_token(None, "admin".parse().unwrap(), "root", NOW).await.unwrap();
    assert!(store.has_admin_token().await.unwrap());

    store.touch_tokens(&[info.id], NOW + 5).await.unwrap();
    let listed = store.list_tokens(Reach::Tenant(acme.id)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at_ms, Some(NOW + 5));
    assert_eq!(store.list_tokens(Reach::Every).await.unwrap().len(), 2);

    // Another tenant's user reaches neither acme's tokens nor the admin's: both are missing
    // to it, whether listed or revoked, and stay valid.
    let other = store.create_tenant("other", "", NOW).await.unwrap();
    assert!(store.list_tokens(Reach::Tenant(other.id)).await.unwrap().is_empty());
    let root = store.list_tokens(Reach::Every).await.unwrap().into_iter().find(|t| t.tenant_id.is_none()).unwrap();
    for id in [info.id, root.id] {
        let refused = store.revoke_token(Reach::Tenant(other.id), id, NOW + 7).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::NotFound, "{refused}");
        assert!(!refused.to_string().contains("acme"), "{refused}");
    }
    let refused = store.revoke_token(Reach::Tenant(acme.id), root.id, NOW + 7).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NotFound);
    assert!(store.authenticate(&secret).await.unwrap().is_some(), "a refused revocation revoked nothing");
    assert!(store.list_tokens(Reach::Every).await.unwrap().iter().all(|t| t.revoked_at_ms.is_none()));

    let revoked = store.revoke_token(Reach::Tenant(acme.id), info.id, NOW + 9).await.unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(NOW + 9));
    assert_eq!(store.authenticate(&secret).await.unwrap(), None);
    assert!(matches!(store.revoke_token(Reach::Every, 9999, NOW).await, Err(e) if e.kind() == ErrorKind::NotFound));
    assert_eq!(store.authenticate("mdk_not-a-token").await.unwrap(), None);
}

async fn points_round_trip_and_isolation(store: Store) {
    let a = store.create_tenant("a", "", NOW).await.unwrap();
    let b = store.create_tenant("b", "", NOW).await.unwrap();
    let body = r#"[
        {"metric_name":"cpu","value":1,"timestamp":1700000000,"agent_id":"h1","tags":{"core":"0"}},
        {"metric_name":"cpu","value":2,"timestamp":1700000001,"agent_id":"h2"},
        {"metric_name":"cpu","value":3,"timestamp":1700000002,"agent_id":"h1","tags":{"core":"0"}},
        {"metric_name":"mem","value":4,"timestamp":1700000003}
    ]"#;
    let stats = store
        .insert_batches(&[batch(a.id, body), batch(b.id, r#"{"metric_name":"cpu","value":99}"#)], NOW)
        .await
        .unwrap();
    assert_eq!((stats.metrics, stats.inserted), (5, 5));

    let cpu = store.query_points(a.id, &all("cpu")).await.unwrap();
    assert_eq!(cpu.iter().map(|p| p.value).collect::<Vec<_>>(), [1.0, 2.0, 3.0]);
    assert_eq!(cpu[0].agent_id.as_deref(), Some("h1"));
    assert_eq!(cpu[0].tags.get("core").map(String::as_str), Some("0"));
    let h1 = PointQuery { agent_id: Some("h1".into()), ..all("cpu") };
    assert_eq!(store.query_points(a.id, &h1).await.unwrap().len(), 2);
    let window = PointQuery { start_ms: Some(1_700_000_001_000), end_ms: Some(1_700_000_002_000), ..all("cpu") };
    assert_eq!(store.query_points(a.id, &window).await.unwrap().iter().map(|p| p.value).collect::<Vec<_>>(), [2.0]);
    let latest = PointQuery { limit: 2, ..all("cpu") };
    assert_eq!(
        store.query_points(a.id, &latest).await.unwrap().iter().map(|p| p.value).collect::<Vec<_>>(),
        [2.0, 3.0]
    );
    let mem = store.query_points(a.id, &all("mem")).await.unwrap();
    assert_eq!((mem.len(), mem[0].agent_id.clone()), (1, None));

    // Tenant b sees only its own point, tenant a never sees b's.
    let b_cpu = store.query_points(b.id, &all("cpu")).await.unwrap();
    assert_eq!(b_cpu.iter().map(|p| p.value).collect::<Vec<_>>(), [99.0]);
    let everything = PointQuery { limit: 1000, ..PointQuery::default() };
    assert_eq!(store.query_points(a.id, &everything).await.unwrap().len(), 4);

    // Agents are recorded per tenant as last seen at the insert's receipt time, and a later
    // batch moves that time on.
    let seen = |agents: Vec<microdash_store::Agent>| -> Vec<(String, i64)> {
        agents.into_iter().map(|a| (a.agent_id, a.last_seen_ms)).collect()
    };
    assert_eq!(seen(store.list_agents(a.id).await.unwrap()), [("h1".into(), NOW), ("h2".into(), NOW)]);
    assert_eq!(seen(store.list_agents(b.id).await.unwrap()), []);
    let later = r#"{"metric_name":"cpu","value":5,"agent_id":"h2"}"#;
    store.insert_batches(&[batch(a.id, later)], NOW + 1_000).await.unwrap();
    assert_eq!(seen(store.list_agents(a.id).await.unwrap()), [("h1".into(), NOW), ("h2".into(), NOW + 1_000)]);
}

async fn dedupe_is_idempotent_across_racing_writers(store: Store) {
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    let other = store.create_tenant("other", "", NOW).await.unwrap();
    let body: Vec<String> = (0..500)
        .map(|i| format!(r#"{{"metric_name":"m","value":{i},"dedupe_id":"d-{i}","timestamp":{}}}"#, 1_700_000_000 + i))
        .collect();
    let body = format!("[{}]", body.join(","));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let batch = batch(t.id, &body);
            tokio::spawn(async move { store.insert_batches(&[batch], NOW).await.unwrap().inserted })
        })
        .collect();
    let mut inserted = 0;
    for w in writers {
        inserted += w.await.unwrap();
    }
    assert_eq!(inserted, 500, "exactly one writer stores each dedupe_id");
    assert_eq!(store.query_points(t.id, &all("m")).await.unwrap().len(), 500);
    // The same dedupe_id in another tenant is a different metric.
    let stats = store
        .insert_batches(&[batch(other.id, r#"{"metric_name":"m","value":1,"dedupe_id":"d-1"}"#)], NOW)
        .await
        .unwrap();
    assert_eq!(stats.inserted, 1);
}

async fn one_insert_with_the_same_new_series_in_two_tenants(store: Store) {
    let a = store.create_tenant("a", "", NOW).await.unwrap();
    let b = store.create_tenant("b", "", NOW).await.unwrap();
    let body = r#"{"metric_name":"cpu","value":1,"agent_id":"h","tags":{"k":"v"}}"#;
    let stats = store.insert_batches(&[batch(a.id, body), batch(b.id, body)], NOW).await.unwrap();
    assert_eq!(stats.inserted, 2);
    for tenant in [a.id, b.id] {
        assert_eq!(store.query_points(tenant, &all("cpu")).await.unwrap().len(), 1, "tenant {tenant}");
    }
}

async fn dedupe_ids_and_names_are_case_sensitive(store: Store) {
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    let body = r#"[{"metric_name":"m","value":1,"dedupe_id":"abc"},{"metric_name":"m","value":2,"dedupe_id":"ABC"},
                   {"metric_name":"M","value":3}]"#;
    assert_eq!(store.insert_batches(&[batch(t.id, body)], NOW).await.unwrap().inserted, 3);
    assert_eq!(store.query_points(t.id, &all("m")).await.unwrap().len(), 2);
    assert_eq!(store.query_points(t.id, &all("M")).await.unwrap().len(), 1);
    let long = "x".repeat(201);
    assert!(matches!(store.create_tenant("long", &long, NOW).await, Err(e) if e.kind() == ErrorKind::Invalid));
    assert!(matches!(
        store.create_token(Some(t.id), "read".parse().unwrap(), &long, NOW).await,
        Err(e) if e.kind() == ErrorKind::Invalid
    ));
}

async fn values_round_trip_exactly(store: Store) {
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    let values = [
        0.1,
        -2.5,
        1e300,
        -1e-300,
        123_456_789.123_456_79,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        0.0,
        -0.0,
        1.0 / 3.0,
    ];
    let metrics = values
        .iter()
        .enumerate()
        .map(|(i, v)| microdash_core::Metric {
            name: "v".into(),
            agent_id: None,
            tags: Default::default(),
            timestamp_ms: i as i64,
            value: *v,
            dedupe_id: None,
        })
        .collect();
    store.insert_batches(&[Batch { tenant_id: t.id, received_at_ms: NOW, metrics }], NOW).await.unwrap();
    let stored: Vec<f64> = store.query_points(t.id, &all("v")).await.unwrap().iter().map(|p| p.value).collect();
    assert_eq!(stored.len(), values.len());
    for (got, want) in stored.iter().zip(values) {
        // Bit for bit, except that MariaDB may store -0.0 as 0.0.
        assert!(got.to_bits() == want.to_bits() || (*got == 0.0 && want == 0.0), "stored {got:e}, sent {want:e}");
    }
    // Their bucket holds sums past f64::MAX: the sum saturates instead of failing the insert.
    let again: Vec<_> = [f64::MAX, f64::MAX]
        .iter()
        .enumerate()
        .map(|(i, v)| microdash_core::Metric {
            name: "v".into(),
            timestamp_ms: 100 + i as i64,
            value: *v,
            ..template()
        })
        .collect();
    store.insert_batches(&[Batch { tenant_id: t.id, received_at_ms: NOW, metrics: again }], NOW).await.unwrap();
    let buckets = store.query_rollups(t.id, microdash_store::RollupLevel::OneMinute, &all("v")).await.unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!((buckets[0].aggregate.count, buckets[0].aggregate.max), (values.len() as u64 + 2, f64::MAX));
    assert!(buckets[0].aggregate.sum.is_finite());
}

fn template() -> microdash_core::Metric {
    microdash_core::Metric {
        name: String::new(),
        agent_id: None,
        tags: Default::default(),
        timestamp_ms: 0,
        value: 0.0,
        dedupe_id: None,
    }
}

async fn dead_letters_keep_the_batch(store: Store) {
    let t = store.create_tenant("t", "", NOW).await.unwrap();
    let kept = batch(t.id, r#"{"metric_name":"m","value":1}"#);
    assert!(store.add_dead_letter(&kept, "disk full", 5, NOW, None).await.unwrap());
    let listed = store.list_dead_letters().await.unwrap();
    assert_eq!((listed.len(), &listed[0].batch, listed[0].attempts), (1, &kept, 5));
    assert!(store.delete_dead_letter(listed[0].id).await.unwrap());
    assert!(store.list_dead_letters().await.unwrap().is_empty());

    // A journalled batch's dead letter records its mark: the journal's replay after a crash
    // before the acknowledgement finds it done, and a second attempt writes nothing.
    let mark = JournalMark::new("dl-journal", 0, 0, [1]);
    assert!(store.add_dead_letter(&kept, "bad", 5, NOW, Some(&mark)).await.unwrap());
    assert!(!store.add_dead_letter(&kept, "bad", 5, NOW, Some(&mark)).await.unwrap());
    assert_eq!(store.list_dead_letters().await.unwrap().len(), 1);
    assert!(store.journal_progress("dl-journal").await.unwrap().is_stored(1));
}

async fn users_sign_in_and_sessions(store: Store) {
    let acme = store.create_tenant("acme", "", NOW).await.unwrap();
    let alice = store.create_user("alice", "correct horse battery", Some(acme.id), NOW).await.unwrap();
    assert_eq!(alice.tenant_slug.as_deref(), Some("acme"));
    assert!(
        matches!(store.create_user("alice", "another password", None, NOW).await, Err(e) if e.kind() == ErrorKind::Conflict)
    );
    assert!(
        matches!(store.create_user("Bob Smith", "long enough pw", None, NOW).await, Err(e) if e.kind() == ErrorKind::Invalid)
    );
    assert!(matches!(store.create_user("bob", "short", None, NOW).await, Err(e) if e.kind() == ErrorKind::Invalid));
    let root = store.create_user("root", "admin password!", None, NOW).await.unwrap();
    assert_eq!(store.list_users().await.unwrap().len(), 2);

    assert!(store.sign_in("alice", "wrong password", NOW, 1000).await.unwrap().is_none());
    assert!(store.sign_in("nobody", "correct horse battery", NOW, 1000).await.unwrap().is_none());
    let (user, secret) = store.sign_in("alice", "correct horse battery", NOW, 1000).await.unwrap().unwrap();
    assert_eq!(user, alice);
    let principal = store.authenticate_session(&secret, NOW + 1).await.unwrap().unwrap();
    assert_eq!(principal.tenant_id, Some(acme.id));
    assert!(principal.scopes.contains(microdash_core::token::Scope::Read));
    assert!(!principal.scopes.contains(microdash_core::token::Scope::Admin));
    // A session is not an API token, and expires.
    assert_eq!(store.authenticate(&secret).await.unwrap(), None);
    assert_eq!(store.authenticate_session(&secret, NOW + 1000).await.unwrap(), None);

    let (_, admin_secret) = store.sign_in("root", "admin password!", NOW, 1000).await.unwrap().unwrap();
    let admin = store.authenticate_session(&admin_secret, NOW).await.unwrap().unwrap();
    assert_eq!((admin.tenant_id, admin.scopes.contains(microdash_core::token::Scope::Admin)), (None, true));
    store.sign_out(&admin_secret).await.unwrap();
    assert_eq!(store.session_user(&admin_secret, NOW).await.unwrap(), None);

    // A new password ends every session; deleting a user removes them.
    let (_, again) = store.sign_in("alice", "correct horse battery", NOW, 1000).await.unwrap().unwrap();
    store.set_password("alice", "a new long password").await.unwrap();
    assert_eq!(store.session_user(&again, NOW).await.unwrap(), None);
    assert!(store.sign_in("alice", "a new long password", NOW, 1000).await.unwrap().is_some());
    assert!(store.delete_user("root").await.unwrap());
    assert!(!store.delete_user("root").await.unwrap());
    assert_eq!(store.user_by_name(&root.username).await.unwrap(), None);
}

/// A refused attempt's key and wait, or `None` when admitted.
async fn refused(store: &Store, limits: &[AttemptLimit], window_ms: i64, now: i64) -> Option<(AttemptKey, i64)> {
    match store.count_sign_in_attempt(limits, window_ms, now).await.unwrap() {
        Admission::Admitted(_) => None,
        Admission::Refused { key, retry_after_ms } => Some((key, retry_after_ms)),
    }
}

async fn sign_in_attempts_are_counted_per_window(store: Store) {
    let user = |name: &str, max| AttemptLimit { key: AttemptKey::User(name.into()), max_attempts: max };
    let addr = |a: &str, max| AttemptLimit { key: AttemptKey::Address(a.into()), max_attempts: max };
    let window = 60_000;
    // Three attempts pass, the fourth is refused until the window that began at NOW ends.
    for i in 0..3 {
        assert_eq!(refused(&store, &[user("carol", 3)], window, NOW + i).await, None, "attempt {i}");
    }
    let (key, wait) = refused(&store, &[user("carol", 3)], window, NOW + 10_000).await.unwrap();
    assert_eq!((key, wait), (AttemptKey::User("carol".into()), 50_000));
    // Refused attempts count too, but do not move the window.
    assert!(refused(&store, &[user("carol", 3)], window, NOW + 59_999).await.is_some());
    // The next window starts afresh.
    assert_eq!(refused(&store, &[user("carol", 3)], window, NOW + window).await, None);

    // One attempt counts against every key; the key that frees up last is named.
    assert_eq!(refused(&store, &[addr("192.0.2.1", 1), user("dave", 2)], window, NOW).await, None);
    let (key, _) = refused(&store, &[user("erin", 5), addr("192.0.2.1", 1)], window, NOW + 1).await.unwrap();
    assert_eq!(key, AttemptKey::Address("192.0.2.1".into()));
    assert!(refused(&store, &[addr("192.0.2.2", 1), user("dave", 2)], window, NOW + 2).await.is_none());
    assert!(refused(&store, &[user("dave", 2)], window, NOW + 3).await.is_some(), "dave counted three times");

    // A right password: the username starts again, the address forgets that attempt only.
    let Admission::Admitted(counted) =
        store.count_sign_in_attempt(&[addr("198.51.100.9", 2), user("frank", 2)], window, NOW).await.unwrap()
    else {
        panic!("first attempt refused")
    };
    assert!(refused(&store, &[addr("198.51.100.9", 2), user("frank", 2)], window, NOW + 1).await.is_none());
    store.sign_in_succeeded(&counted).await.unwrap();
    assert!(refused(&store, &[addr("198.51.100.9", 2)], window, NOW + 2).await.is_none());
    assert!(refused(&store, &[addr("198.51.100.9", 2)], window, NOW + 3).await.is_some());
    assert!(refused(&store, &[user("frank", 2)], window, NOW + 4).await.is_none());
    assert!(refused(&store, &[user("frank", 2)], window, NOW + 5).await.is_none());
    assert!(refused(&store, &[user("frank", 2)], window, NOW + 6).await.is_some());

    // Keys are checked before anything is written.
    let long = "x".repeat(MAX_ATTEMPT_SUBJECT_BYTES + 1);
    for bad in [user("", 1), user(&long, 1), user("sp ace", 1), user("é", 1)] {
        assert!(
            matches!(store.count_sign_in_attempt(&[bad], window, NOW).await, Err(e) if e.kind() == ErrorKind::Invalid)
        );
    }

    // Windows that ended are swept; the rest stay.
    assert_eq!(store.expire_sign_in_attempts(window, NOW + window + 10).await.unwrap(), 6);
    assert_eq!(store.expire_sign_in_attempts(window, NOW + 2 * window).await.unwrap(), 1, "carol's second window");
    assert_eq!(store.expire_sign_in_attempts(window, NOW + 2 * window).await.unwrap(), 0);
}

async fn credentials_are_rechecked_in_bulk(store: Store) {
    let acme = store.create_tenant("acme", "", NOW).await.unwrap();
    let scopes: Scopes = "read".parse().unwrap();
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(store.create_token(Some(acme.id), scopes, &format!("t{i}"), NOW).await.unwrap().0.id);
    }
    store.create_user("alice", "correct horse battery", Some(acme.id), NOW).await.unwrap();
    let (_, kept) = store.sign_in("alice", "correct horse battery", NOW, 1000).await.unwrap().unwrap();
    let (_, ended) = store.sign_in("alice", "correct horse battery", NOW, 1000).await.unwrap().unwrap();
    let kept = store.authenticate_session(&kept, NOW).await.unwrap().unwrap().credential;
    let ended_credential = store.authenticate_session(&ended, NOW).await.unwrap().unwrap().credential;
    assert!(store.sign_out(&ended).await.unwrap().is_some());
    assert_eq!(store.sign_out(&ended).await.unwrap(), None, "already signed out");
    store.revoke_token(Reach::Every, tokens[1], NOW).await.unwrap();

    let mut asked: Vec<Credential> = tokens.iter().map(|id| Credential::Token(*id)).collect();
    asked.extend([kept, ended_credential, Credential::Token(999_999)]);
    let valid = store.valid_credentials(&asked, NOW + 1).await.unwrap();
    assert_eq!(valid, [Credential::Token(tokens[0]), Credential::Token(tokens[2]), kept]);
    // Sessions expire; a deleted user's sessions go with them.
    assert_eq!(store.valid_credentials(&[kept], NOW + 1000).await.unwrap(), []);
    assert!(store.still_valid(kept, NOW + 1).await.unwrap());
    store.delete_user("alice").await.unwrap();
    assert!(!store.still_valid(kept, NOW + 1).await.unwrap());
}

async fn migrate_twice_and_ping(store: Store) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

/// A tenant's own quotas are stored beside its retention, `null` returns one to the default,
/// `0` is kept (unlimited, not the default), and a bad value changes nothing at all.
async fn tenant_quotas(store: Store) {
    use microdash_store::{QuotaChange, RetentionChange};
    let t = store.create_tenant("q", "", NOW).await.unwrap();
    assert_eq!(t.quota, Default::default());
    let quota = QuotaChange { max_ingest_metrics_per_s: Some(Some(500)), max_series: Some(Some(0)) };
    let retention = RetentionChange { raw_hours: Some(Some(48)), ..Default::default() };
    let t = store.update_tenant(t.id, &retention, &quota).await.unwrap();
    assert_eq!((t.quota.max_ingest_metrics_per_s, t.quota.max_series), (Some(500), Some(0)));
    assert_eq!(t.retention.raw_hours, Some(48));

    let bad = QuotaChange { max_ingest_metrics_per_s: Some(Some(10)), max_series: Some(Some(-3)) };
    let raw = RetentionChange { raw_hours: Some(Some(12)), ..Default::default() };
    let err = store.update_tenant(t.id, &raw, &bad).await.unwrap_err();
    assert!(err.kind() == ErrorKind::Invalid && err.to_string().contains("max_series"), "{err}");
    let unchanged = store.tenant(t.id).await.unwrap().unwrap();
    assert_eq!((unchanged.quota, unchanged.retention), (t.quota, t.retention), "nothing of a refused change");

    let reset = QuotaChange { max_ingest_metrics_per_s: Some(None), ..Default::default() };
    let t = store.update_tenant(t.id, &RetentionChange::default(), &reset).await.unwrap();
    assert_eq!((t.quota.max_ingest_metrics_per_s, t.quota.max_series), (None, Some(0)));
    assert_eq!(store.list_tenants().await.unwrap()[0].quota, t.quota);
}

/// `series_after` pages through one tenant's series in id order, never another's.
async fn series_pages_by_id(store: Store) {
    let a = store.create_tenant("a", "", NOW).await.unwrap();
    let b = store.create_tenant("b", "", NOW).await.unwrap();
    let json = |n: usize| {
        let metrics: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"metric_name":"m{i}","value":1,"agent_id":"h","tags":{{"k":"{i}"}}}}"#))
            .collect();
        format!("[{}]", metrics.join(","))
    };
    store.insert_batches(&[batch(a.id, &json(5)), batch(b.id, &json(3))], NOW).await.unwrap();
    let first = store.series_after(a.id, 0, 3).await.unwrap();
    assert_eq!(first.len(), 3);
    let rest = store.series_after(a.id, first[2].0, 3).await.unwrap();
    assert_eq!(rest.len(), 2);
    let ids: Vec<i64> = first.iter().chain(&rest).map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let mut names: Vec<String> = first.iter().chain(&rest).map(|(_, s)| s.metric_name.clone()).collect();
    names.sort();
    assert_eq!(names, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(first[0].1.agent_id.as_deref(), Some("h"));
    assert!(store.series_after(a.id, ids[4], 10).await.unwrap().is_empty());
    assert_eq!(store.series_after(b.id, 0, 10).await.unwrap().len(), 3);
}

/// The latest point of each series of the named metrics, per tenant only, whichever order
/// the points came in.
async fn latest_values_per_series(store: Store) {
    let a = store.create_tenant("a", "", NOW).await.unwrap();
    let b = store.create_tenant("b", "", NOW).await.unwrap();
    let body = r#"[
        {"metric_name":"cpu","value":10,"timestamp":1700000000,"agent_id":"h1"},
        {"metric_name":"cpu","value":30,"timestamp":1700000120,"agent_id":"h1"},
        {"metric_name":"cpu","value":20,"timestamp":1700000060,"agent_id":"h1"},
        {"metric_name":"cpu","value":5,"timestamp":1700000001,"agent_id":"h2"},
        {"metric_name":"disk","value":40,"timestamp":1700000000,"agent_id":"h1","tags":{"mount":"/"}},
        {"metric_name":"disk","value":70,"timestamp":1700000000,"agent_id":"h1","tags":{"mount":"/data"}},
        {"metric_name":"other","value":1,"timestamp":1700000000,"agent_id":"h1"}
    ]"#;
    store
        .insert_batches(&[batch(a.id, body), batch(b.id, r#"{"metric_name":"cpu","value":99,"agent_id":"h1"}"#)], NOW)
        .await
        .unwrap();
    let mut latest = store.latest_values(a.id, &["cpu", "disk", "absent"]).await.unwrap();
    latest.sort_by(|x, y| (&x.metric_name, &x.agent_id, &x.tags).cmp(&(&y.metric_name, &y.agent_id, &y.tags)));
    /// Metric, agent, mount tag, time and value of one latest point.
    type Seen = (String, Option<String>, Option<String>, i64, f64);
    let seen: Vec<Seen> = latest
        .into_iter()
        .map(|l| (l.metric_name, l.agent_id, l.tags.get("mount").cloned(), l.ts_ms, l.value))
        .collect();
    assert_eq!(
        seen,
        [
            ("cpu".into(), Some("h1".into()), None, 1_700_000_120_000, 30.0),
            ("cpu".into(), Some("h2".into()), None, 1_700_000_001_000, 5.0),
            ("disk".into(), Some("h1".into()), Some("/".into()), 1_700_000_000_000, 40.0),
            ("disk".into(), Some("h1".into()), Some("/data".into()), 1_700_000_000_000, 70.0),
        ]
    );
    let other = store.latest_values(b.id, &["cpu"]).await.unwrap();
    assert_eq!(other.iter().map(|l| l.value).collect::<Vec<_>>(), [99.0], "only tenant b's own series");
    assert!(store.latest_values(a.id, &[]).await.unwrap().is_empty());
    // More series than one statement takes.
    let many: Vec<String> = (0..1_200)
        .map(|i| format!(r#"{{"metric_name":"cpu","value":{i},"timestamp":1700000000,"agent_id":"bulk-{i}"}}"#))
        .collect();
    store.insert_batches(&[batch(b.id, &format!("[{}]", many.join(",")))], NOW).await.unwrap();
    assert_eq!(store.latest_values(b.id, &["cpu"]).await.unwrap().len(), 1_201);
}

/// A tenant's layout is saved and replaced as a whole, and no other tenant sees it.
async fn layouts_are_saved_per_tenant(store: Store) {
    use microdash_core::api::{LayoutIn, WidgetIn};
    use microdash_core::layout::Layout;
    let a = store.create_tenant("a", "", NOW).await.unwrap();
    let b = store.create_tenant("b", "", NOW).await.unwrap();
    assert_eq!(store.layout(a.id).await.unwrap(), None);
    let widget = |name: &str, hidden: bool| WidgetIn {
        metric_name: Some(name.into()),
        hidden: Some(hidden),
        kind: Some("stat".into()),
        ..WidgetIn::default()
    };
    let first =
        Layout::from_input(LayoutIn { widgets: Some(vec![widget("cpu", false), widget("mem", true)]) }).unwrap();
    let saved = store.save_layout(a.id, &first, NOW).await.unwrap();
    assert_eq!((saved.layout.clone(), saved.updated_at_ms), (first.clone(), NOW));
    assert_eq!(store.layout(a.id).await.unwrap(), Some(saved));
    assert_eq!(store.layout(b.id).await.unwrap(), None);
    let second = Layout::from_input(LayoutIn { widgets: Some(vec![widget("mem", false)]) }).unwrap();
    store.save_layout(a.id, &second, NOW + 1).await.unwrap();
    // The same layout again in the same millisecond (an update that changes no row).
    store.save_layout(a.id, &second, NOW + 1).await.unwrap();
    let stored = store.layout(a.id).await.unwrap().unwrap();
    assert_eq!((stored.layout, stored.updated_at_ms), (second, NOW + 1));
    // Saves racing for a tenant's first layout all succeed; one of them is kept.
    let racing: Vec<_> = (0..4)
        .map(|i| {
            let (store, layout) = (store.clone(), first.clone());
            tokio::spawn(async move { store.save_layout(b.id, &layout, NOW + i).await })
        })
        .collect();
    for save in racing {
        save.await.unwrap().unwrap();
    }
    assert_eq!(store.layout(b.id).await.unwrap().unwrap().layout, first);
}

on_every_backend!(
    tenant_quotas,
    series_pages_by_id,
    tenants_and_tokens,
    points_round_trip_and_isolation,
    dedupe_is_idempotent_across_racing_writers,
    dead_letters_keep_the_batch,
    one_insert_with_the_same_new_series_in_two_tenants,
    dedupe_ids_and_names_are_case_sensitive,
    values_round_trip_exactly,
    migrate_twice_and_ping,
    users_sign_in_and_sessions,
    sign_in_attempts_are_counted_per_window,
    credentials_are_rechecked_in_bulk,
    latest_values_per_series,
    layouts_are_saved_per_tenant,
);

/// Processes that start together on an empty MariaDB database (compose starts the server,
/// workers and bridges at once) all come up: one migrates, the others wait for it.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_migrations_from_racing_processes_all_succeed() {
    let db = TestDb::new(Backend::Mysql).await;
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = db.url.clone();
        racing.spawn(async move { Store::connect(&url, &Default::default()).await?.migrate().await });
    }
    while let Some(migrated) = racing.join_next().await {
        migrated.unwrap().unwrap();
    }
}

/// Six rounds of 2,000 rows into a fresh SQLite store; returns the store and its file path.
async fn sqlite_after_writes(options: microdash_store::StoreOptions) -> (TestDb, Store, String) {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = Store::connect(&db.url, &options).await.unwrap();
    store.migrate().await.unwrap();
    let tenant = store.create_tenant("acme", "", 0).await.unwrap().id;
    for round in 0..6 {
        let json: Vec<String> = (0..2_000)
            .map(|i| format!(r#"{{"metric_name":"m{}","value":{i},"timestamp":{}}}"#, i % 7, round * 10_000 + i))
            .collect();
        store.insert_batches(&[batch(tenant, &format!("[{}]", json.join(",")))], NOW).await.unwrap();
    }
    let path = db.url.strip_prefix("sqlite://").unwrap().to_owned();
    (db, store, path)
}

/// Under sustained writes the SQLite WAL is restarted every `sqlite_wal_restart_rows`, so it
/// stays about one interval's size instead of holding every batch since the last quiet moment.
/// (Background checkpoints are off for the comparison: one that happened to catch up could
/// restart the WAL too.)
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_wal_is_restarted_under_sustained_writes() {
    async fn wal_bytes_after_writes(restart_rows: usize, checkpoints: Option<Duration>) -> u64 {
        let options = microdash_store::StoreOptions {
            sqlite_wal_restart_rows: restart_rows,
            sqlite_checkpoint_interval: checkpoints,
            ..Default::default()
        };
        let (_db, _store, path) = sqlite_after_writes(options).await;
        std::fs::metadata(format!("{path}-wal")).unwrap().len()
    }
    let restarted = wal_bytes_after_writes(1, None).await;
    let growing = wal_bytes_after_writes(usize::MAX, None).await;
    assert!(restarted * 3 < growing, "WAL {restarted} bytes with restarts, {growing} without");
    // Background checkpoints running as often as they can do not get in the restarts' way.
    let beside_checkpoints = wal_bytes_after_writes(1, Some(Duration::ZERO)).await;
    assert!(beside_checkpoints * 3 < growing, "WAL {beside_checkpoints} bytes beside background checkpoints");
}

/// The background checkpointer copies committed pages into the database file on its own: no
/// commit checkpoints (`wal_autocheckpoint = 0`) and the restarts are out of reach here, so
/// without it the points would stay in the WAL and the file would keep its empty size.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_checkpoints_in_the_background() {
    let options = microdash_store::StoreOptions {
        sqlite_wal_restart_rows: usize::MAX,
        sqlite_checkpoint_interval: Some(Duration::from_millis(10)),
        ..Default::default()
    };
    let (_db, _store, path) = sqlite_after_writes(options).await;
    let file_bytes = || std::fs::metadata(&path).unwrap().len();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // 12,000 points take well over 100 KiB of pages; the schema alone, under 100 KiB.
    while file_bytes() < 200 * 1024 {
        assert!(std::time::Instant::now() < deadline, "database file still {} bytes", file_bytes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
