//! Dashboard users: sign-in, the session cookie as a credential, and what each kind of
//! user may see and manage.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{App, Reply, session_cookie, sign_in, with_cookie};
use microdash_ingest::http::{HttpConfig, SignInLimits};
use microdash_ingest::revocation::RevocationConfig;
use microdash_store::Backend;

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_user_signs_in_and_sees_only_their_tenant() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    app.tenant("other", "ingest,read").await;
    app.store.create_user("alice", "alice's password", Some(acme.id), 0).await.unwrap();

    assert_eq!(sign_in(&app, "alice", "wrong password").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&app, "mallory", "alice's password").await.status, StatusCode::UNAUTHORIZED);
    let reply = sign_in(&app, "alice", "alice's password").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json, serde_json::json!({"username": "alice", "tenant": "acme", "admin": false}));
    let cookie = session_cookie(&reply);

    let me = with_cookie(&app, "GET", "/api/v1/session", &cookie, None).await;
    assert_eq!(me.json["username"], "alice");
    let tenants = with_cookie(&app, "GET", "/api/v1/tenants", &cookie, None).await;
    assert_eq!(tenants.json.as_array().unwrap().len(), 1);
    assert_eq!(tenants.json[0]["slug"], "acme");

    // The cookie reads the tenant's data and its stream, and nothing of another tenant.
    app.call("POST", "/api/v1/metrics", Some(&acme.token), Some(r#"{"metric_name":"m","value":1}"#)).await;
    app.wait_for_points(&acme.token, "metric_name=m", 1).await;
    let points = with_cookie(&app, "GET", "/api/v1/metrics?metric_name=m", &cookie, None).await;
    assert_eq!(points.json["count"], 1);
    let poll = with_cookie(&app, "GET", "/api/v1/stream/acme/latest", &cookie, None).await;
    assert_eq!(poll.status, StatusCode::OK);
    let other = with_cookie(&app, "GET", "/api/v1/stream/other/latest", &cookie, None).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let req = Request::get("/api/v1/stream/other").header("cookie", cookie.clone()).body(Body::empty()).unwrap();
    assert_eq!(app.send_head(req).await, StatusCode::FORBIDDEN);
    let req = Request::get("/api/v1/stream/acme").header("cookie", cookie.clone()).body(Body::empty()).unwrap();
    assert_eq!(app.send_head(req).await, StatusCode::OK);
    // Pushing with the cookie needs an explicit JSON Content-Type (no cross-site simple request).
    let req = Request::post("/api/v1/metrics").header("cookie", cookie.clone());
    let untyped = app.send(req.body(Body::from(r#"{"metric_name":"m","value":2}"#)).unwrap()).await;
    assert_eq!(untyped.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let typed = with_cookie(&app, "POST", "/api/v1/metrics", &cookie, Some(r#"{"metric_name":"m","value":2}"#)).await;
    assert_eq!(typed.status, StatusCode::ACCEPTED);
    let create = with_cookie(&app, "POST", "/api/v1/tenants", &cookie, Some(r#"{"slug":"mine"}"#)).await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);

    // Signing out ends the session.
    let out = with_cookie(&app, "DELETE", "/api/v1/session", &cookie, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(with_cookie(&app, "GET", "/api/v1/session", &cookie, None).await.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_users_manage_their_own_tokens_only() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    let other = app.tenant("other", "ingest,read").await;
    app.store.create_user("alice", "alice's password", Some(acme.id), 0).await.unwrap();
    let cookie = session_cookie(&sign_in(&app, "alice", "alice's password").await);

    let listed = with_cookie(&app, "GET", "/api/v1/tokens", &cookie, None).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1, "only acme's token: {}", listed.text);
    let created =
        with_cookie(&app, "POST", "/api/v1/tokens", &cookie, Some(r#"{"scopes":"ingest","name":"edge"}"#)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["tenant"], "acme");
    let token = created.json["token"].as_str().unwrap().to_owned();
    let pushed = app.call("POST", "/api/v1/metrics", Some(&token), Some(r#"{"metric_name":"m","value":1}"#)).await;
    assert_eq!(pushed.status, StatusCode::ACCEPTED);

    let foreign = r#"{"scopes":"read","tenant":"other"}"#;
    assert_eq!(with_cookie(&app, "POST", "/api/v1/tokens", &cookie, Some(foreign)).await.status, StatusCode::FORBIDDEN);
    let admin_scope = with_cookie(&app, "POST", "/api/v1/tokens", &cookie, Some(r#"{"scopes":"admin"}"#)).await;
    assert_eq!(admin_scope.status, StatusCode::UNPROCESSABLE_ENTITY);
    let others_token = app.store.list_tokens(microdash_store::Reach::Tenant(other.id)).await.unwrap()[0].id;
    let revoke_other = with_cookie(&app, "DELETE", &format!("/api/v1/tokens/{others_token}"), &cookie, None).await;
    assert_eq!(revoke_other.status, StatusCode::NOT_FOUND);
    let id = created.json["id"].as_i64().unwrap();
    let revoked = with_cookie(&app, "DELETE", &format!("/api/v1/tokens/{id}"), &cookie, None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.json["revoked_at"].is_string());

    // A tenant API token manages nothing, even with every tenant scope.
    assert_eq!(app.call("GET", "/api/v1/tokens", Some(&acme.token), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call("GET", "/api/v1/session", Some(&acme.token), None).await.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_user_sees_every_tenant_and_stream() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    app.tenant("other", "read").await;
    app.store.create_user("root", "root's password", None, 0).await.unwrap();
    let reply = sign_in(&app, "root", "root's password").await;
    assert_eq!(reply.json["admin"], true);
    let cookie = session_cookie(&reply);
    let tenants = with_cookie(&app, "GET", "/api/v1/tenants", &cookie, None).await;
    assert_eq!(tenants.json.as_array().unwrap().len(), 2);
    let poll = with_cookie(&app, "GET", "/api/v1/stream/other/latest", &cookie, None).await;
    assert_eq!(poll.status, StatusCode::OK);
    let listed = with_cookie(&app, "GET", "/api/v1/tokens", &cookie, None).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 2);
    // An admin names the tenant whose history to read.
    app.call("POST", "/api/v1/metrics", Some(&acme.token), Some(r#"{"metric_name":"m","value":1}"#)).await;
    app.wait_for_points(&acme.token, "metric_name=m", 1).await;
    let query = with_cookie(&app, "GET", "/api/v1/metrics?tenant=acme&metric_name=m", &cookie, None).await;
    assert_eq!(query.json["count"], 1, "{}", query.text);
    let unnamed = with_cookie(&app, "GET", "/api/v1/metrics", &cookie, None).await;
    assert_eq!(unnamed.status, StatusCode::FORBIDDEN);
    // A tenant token naming another tenant is refused.
    let foreign = app.call("GET", "/api/v1/metrics?tenant=other", Some(&acme.token), None).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

/// Sign-ins of `username` with each of `passwords`, all at once; how many were let in,
/// how many were checked and refused, and how many were refused unchecked (`429`, each
/// checked for its `Retry-After` and JSON body).
async fn guess_at_once(app: &App, username: &str, passwords: &[String]) -> (usize, usize, usize) {
    let replies = futures_util::future::join_all(passwords.iter().map(|p| sign_in(app, username, p))).await;
    let mut counts = (0, 0, 0);
    for reply in replies {
        match reply.status {
            StatusCode::OK => counts.0 += 1,
            StatusCode::UNAUTHORIZED => counts.1 += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_locked(&reply, "username");
                counts.2 += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    counts
}

/// A `429` naming `field`, with a `Retry-After` within the 15-minute window.
fn assert_locked(reply: &Reply, field: &str) {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text);
    let retry_after: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(reply.json["error"], "too_many_attempts", "{}", reply.text);
    assert_eq!(reply.json["details"][0]["field"], field, "{}", reply.text);
}

/// With a limit of 5, guesses sent at once are each counted before any password is checked:
/// of 150 exactly 5 are checked, and the right password is refused once the user is locked.
async fn parallel_guesses_are_all_counted(backend: Backend) {
    let app = App::start_on(backend, common::test_http(), RevocationConfig::default()).await;
    app.store.create_user("carol", "carol's password", None, 0).await.unwrap();
    let wrong: Vec<String> = (0..150).map(|i| format!("guess number {i}")).collect();
    assert_eq!(guess_at_once(&app, "carol", &wrong).await, (0, 5, 145));
    assert_locked(&sign_in(&app, "carol", "carol's password").await, "username");

    // Fifty at once with the right one among them. It gets in only if it is one of the
    // five checked; it then starts the count again, so at most five more are checked after it.
    app.store.create_user("dave", "dave's password", None, 0).await.unwrap();
    let mut guesses: Vec<String> = (0..49).map(|i| format!("guess number {i}")).collect();
    guesses.insert(24, "dave's password".into());
    let (ok, failed, refused) = guess_at_once(&app, "dave", &guesses).await;
    assert_eq!(ok + failed + refused, 50);
    if ok == 0 {
        assert_eq!(failed, 5);
        assert_locked(&sign_in(&app, "dave", "dave's password").await, "username");
    } else {
        assert!(failed <= 9, "{failed} checked");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_guesses_are_all_counted_on_sqlite() {
    parallel_guesses_are_all_counted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_guesses_are_all_counted_on_mariadb() {
    parallel_guesses_are_all_counted(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lockout_survives_a_restart_and_a_right_password_resets_it() {
    let app = App::start().await;
    app.store.create_user("carol", "carol's password", None, 0).await.unwrap();
    app.store.create_user("dave", "dave's password", None, 0).await.unwrap();
    for _ in 0..5 {
        assert_eq!(sign_in(&app, "carol", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    // Four wrong, then right: dave's count starts again.
    for _ in 0..4 {
        assert_eq!(sign_in(&app, "dave", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(sign_in(&app, "dave", "dave's password").await.status, StatusCode::OK);

    // A new runtime on the same database: what a restart (or another API process) is.
    let app = app.restart().await;
    assert_locked(&sign_in(&app, "carol", "carol's password").await, "username");
    for _ in 0..5 {
        assert_eq!(sign_in(&app, "dave", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_locked(&sign_in(&app, "dave", "dave's password").await, "username");
    // Other users are not affected.
    app.store.create_user("erin", "erin's password", None, 0).await.unwrap();
    assert_eq!(sign_in(&app, "erin", "erin's password").await.status, StatusCode::OK);
    app.stop().await;
}

/// A sign-in as it arrives from `peer`, with an `X-Forwarded-For` if given.
async fn sign_in_from(app: &App, peer: &str, forwarded: Option<&str>, username: &str, password: &str) -> Reply {
    let body = format!(r#"{{"username":"{username}","password":"{password}"}}"#);
    let mut req = Request::post("/api/v1/session").header("content-type", "application/json");
    if let Some(forwarded) = forwarded {
        req = req.header("x-forwarded-for", forwarded);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    let peer: std::net::IpAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::new(peer, 40_000)));
    app.send(req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn each_client_address_has_a_limit_of_its_own() {
    let http = HttpConfig {
        sign_in: SignInLimits { attempts_per_address: 3, ..SignInLimits::default() },
        trusted_proxies: microdash_ingest::http::parse_networks("10.0.0.0/8").unwrap(),
        ..common::test_http()
    };
    let app = App::start_on(Backend::Sqlite, http, RevocationConfig::default()).await;
    app.store.create_user("alice", "alice's password", None, 0).await.unwrap();
    let wrong = async |peer: &str, forwarded: Option<&str>, user: &str| {
        sign_in_from(&app, peer, forwarded, user, "guess").await.status
    };
    // Guesses at different users from one address share its limit.
    for user in ["u1", "u2", "u3"] {
        assert_eq!(wrong("192.0.2.1", None, user).await, StatusCode::UNAUTHORIZED);
    }
    assert_locked(&sign_in_from(&app, "192.0.2.1", None, "u4", "guess").await, "client_address");
    assert_locked(&sign_in_from(&app, "192.0.2.1", None, "alice", "alice's password").await, "client_address");
    assert_eq!(wrong("192.0.2.2", None, "u4").await, StatusCode::UNAUTHORIZED);
    // Right passwords do not count against an address.
    for _ in 0..4 {
        let reply = sign_in_from(&app, "192.0.2.3", None, "alice", "alice's password").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    // IPv6 addresses count by their /64.
    for user in ["v1", "v2", "v3"] {
        assert_eq!(wrong("2001:db8::1", None, user).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(wrong("2001:db8::2", None, "v4").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(wrong("2001:db8:0:1::1", None, "v4").await, StatusCode::UNAUTHORIZED);
    // Behind a trusted proxy the client is the address it forwards; whatever the client
    // itself put further left is not believed.
    for user in ["w1", "w2", "w3"] {
        assert_eq!(wrong("10.0.0.5", Some("203.0.113.7"), user).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(wrong("10.1.2.3", Some("198.51.100.1, 203.0.113.7"), "w4").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(wrong("10.0.0.5", Some("203.0.113.8"), "w4").await, StatusCode::UNAUTHORIZED);
    // Anyone else's X-Forwarded-For is ignored.
    for (user, forwarded) in [("x1", "203.0.113.20"), ("x2", "203.0.113.21"), ("x3", "203.0.113.22")] {
        assert_eq!(wrong("192.0.2.9", Some(forwarded), user).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(wrong("192.0.2.9", Some("203.0.113.23"), "x4").await, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

/// A cookie-authenticated change, or a sign-in, from another origin is refused; from the
/// server's own origin (or with no browser headers at all) it goes through. Reads pass.
#[tokio::test(flavor = "multi_thread")]
async fn changes_with_the_cookie_must_come_from_this_origin() {
    let app = App::start().await;
    let acme = app.tenant("acme", "ingest,read").await;
    app.store.create_user("alice", "alice's password", Some(acme.id), 0).await.unwrap();
    let cookie = session_cookie(&sign_in(&app, "alice", "alice's password").await);
    let token = r#"{"scopes":"read","name":"x"}"#;
    let send = async |method: &str, uri: &str, headers: &[(&str, &str)], body: Option<&str>| {
        let mut req = Request::builder().method(method).uri(uri).header("host", "dash.local:8080");
        if !cookie.is_empty() && uri != "/api/v1/session" {
            req = req.header("cookie", cookie.clone());
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        app.send(req.body(body.map(|b| Body::from(b.to_owned())).unwrap_or_else(Body::empty)).unwrap()).await
    };

    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")],
        &[("origin", "http://dash.local:8081")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
    ] {
        let refused = send("POST", "/api/v1/tokens", headers, Some(token)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{headers:?}: {}", refused.text);
        assert!(refused.text.contains("cross-origin"), "{}", refused.text);
        let login = r#"{"username":"alice","password":"alice's password"}"#;
        let refused = send("POST", "/api/v1/session", headers, Some(login)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "sign-in {headers:?}: {}", refused.text);
    }
    // Reads are not changes.
    let read = send("GET", "/api/v1/tokens", &[("origin", "https://evil.example")], None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    for headers in [
        &[("origin", "http://dash.local:8080"), ("sec-fetch-site", "same-origin")][..],
        &[("origin", "HTTP://DASH.LOCAL:8080")],
        &[("sec-fetch-site", "same-origin")],
        &[],
    ] {
        let created = send("POST", "/api/v1/tokens", headers, Some(token)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{headers:?}: {}", created.text);
    }
    // A bearer token is no browser credential: no Origin rule.
    let req = Request::post("/api/v1/metrics")
        .header("authorization", format!("Bearer {}", acme.token))
        .header("origin", "https://evil.example")
        .header("host", "dash.local:8080")
        .header("content-type", "application/json");
    let reply = app.send(req.body(Body::from(r#"{"metric_name":"m","value":1}"#)).unwrap()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
}

/// Every answer says nosniff, no framing and same-origin referrers; the dashboard's pages
/// carry the Content-Security-Policy.
#[tokio::test(flavor = "multi_thread")]
async fn answers_carry_the_browser_hardening_headers() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<!doctype html><title>t</title>").unwrap();
    let http = microdash_ingest::http::HttpConfig { web_dir: Some(web.path().to_owned()), ..common::test_http() };
    let app = App::start_with_http(http).await;
    for uri in ["/", "/api/v1/health", "/api/v1/nothing"] {
        let reply = app.call("GET", uri, None, None).await;
        assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(reply.headers["x-frame-options"], "DENY", "{uri}");
        assert_eq!(reply.headers["referrer-policy"], "same-origin", "{uri}");
    }
    let page = app.call("GET", "/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    for directive in ["frame-ancestors 'none'", "script-src 'self' 'wasm-unsafe-eval'", "object-src 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("'unsafe-eval'") && !csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
}
