//! Tokens at the upgrade, refresh and expiry, origins, anonymous access,
//! and admin authentication.

mod common;

use std::time::Duration;

use common::{claims, Closed, Server, ADMIN_KEY};
use serde_json::json;

#[actix_rt::test]
async fn bad_tokens_are_refused_before_the_upgrade_with_401() {
    let server = Server::start("");
    let cases = [
        ("missing", String::new()),
        ("garbage", "not-a-jwt".to_string()),
        ("expired", server.mint(claims("alice", -120))),
        // {"alg":"none"} with no signature
        (
            "alg none",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.".to_string(),
        ),
        // Signed with another key.
        (
            "wrong key",
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.Hd3yqlC7iQ0CZgi1A8nG0B6MyL8ZpcGJMxzWZwXbkWg".to_string(),
        ),
    ];
    for (what, token) in cases {
        let (status, body) = server
            .connect_with(&token, &[])
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(status, 401, "{what}");
        assert_eq!(body["code"], "UNAUTHORIZED", "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    // A token in the query string works for browsers, and never reaches the log.
    let token = server.token("alice", &[]);
    let client = server
        .connect_query(&format!("token={token}"))
        .await
        .expect("query token");
    assert_eq!(client.user_id(), "alice");
    let (status, _) = server.connect_query("token=garbage").await.err().unwrap();
    assert_eq!(status, 401);
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    assert!(
        log.contains("connect conn="),
        "connections are logged: {log}"
    );
    assert!(!log.contains(&token), "the token leaked into the log");
    assert!(
        !log.contains("garbage"),
        "a query string leaked into the log"
    );
}

#[actix_rt::test]
async fn refresh_keeps_the_connection_past_expiry_and_expiry_closes_4001() {
    let server = Server::start("");
    let short = server.mint(claims("alice", 2));
    let mut alice = server.connect_with(&short, &[]).await.unwrap();
    let mut bob = server
        .connect_with(&server.mint(claims("bob", 2)), &[])
        .await
        .unwrap();

    // A token for someone else is refused.
    let other = server.mint(claims("mallory", 3600));
    assert_eq!(
        alice
            .err(json!({"type": "auth:refresh", "token": other}))
            .await,
        "UNAUTHORIZED"
    );
    assert_eq!(
        alice
            .err(json!({"type": "auth:refresh", "token": "junk"}))
            .await,
        "UNAUTHORIZED"
    );
    let fresh = server.mint(claims("alice", 3600));
    let reply = alice
        .ok(json!({"type": "auth:refresh", "token": fresh}))
        .await;
    assert!(reply["expiresAt"].as_str().unwrap().ends_with('Z'));

    // Bob did not refresh: closed with 4001 once his token expires.
    assert_eq!(bob.closed(Duration::from_secs(5)).await, Closed::Code(4001));
    // Alice is still here.
    let pong = alice.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}

#[actix_rt::test]
async fn foreign_origins_get_403_when_an_allowlist_is_set() {
    let server = Server::start("");
    // No allowlist: any origin.
    server
        .connect_with(
            &server.token("a", &[]),
            &[("Origin", "https://evil.example")],
        )
        .await
        .unwrap();
    let server = Server::start_with_env(
        "",
        &[("REALTIME__SERVER__ORIGINS", r#"["https://app.example"]"#)],
    );
    let token = server.token("a", &[]);
    server
        .connect_with(&token, &[("Origin", "https://app.example")])
        .await
        .unwrap();
    let (status, body) = server
        .connect_with(&token, &[("Origin", "https://evil.example")])
        .await
        .err()
        .unwrap();
    assert_eq!((status, body["code"].as_str().unwrap()), (403, "FORBIDDEN"));
}

#[actix_rt::test]
async fn anonymous_access_only_when_configured() {
    let server = Server::start("");
    assert_eq!(server.connect_with("", &[]).await.err().unwrap().0, 401);
    let server = Server::start_with_env("", &[("REALTIME__SERVER__ANONYMOUS", "true")]);
    let mut anon = server.connect_with("", &[]).await.unwrap();
    let expected = format!("anon:{}", anon.connection_id());
    assert_eq!(anon.user_id(), expected);
    anon.join("lobby").await;
    assert_eq!(
        anon.err(json!({"type": "room:join", "room": "team:1"}))
            .await,
        "FORBIDDEN"
    );
}

#[actix_rt::test]
async fn admin_api_needs_the_admin_key_or_an_admin_jwt() {
    let server = Server::start("");
    let (status, body) = server.get("/admin/stats", None).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (401, "UNAUTHORIZED")
    );
    let (status, _) = server.get("/admin/stats", Some("wrong-key")).await;
    assert_eq!(status, 401);
    let user = server.token("alice", &[]);
    let (status, body) = server.get("/admin/stats", Some(&user)).await;
    assert_eq!((status, body["code"].as_str().unwrap()), (403, "FORBIDDEN"));
    assert_eq!(server.get("/admin/stats", Some(ADMIN_KEY)).await.0, 200);
    assert_eq!(
        server
            .get("/admin/stats", Some(&server.admin_jwt()))
            .await
            .0,
        200
    );
}

#[actix_rt::test]
async fn insecure_mode_is_loud_and_refused_in_production() {
    // No key at all: the server starts, warns, and the CLI's tokens work.
    let server = Server::start_with_env("", &[("REALTIME_JWT_SECRET", "")]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.log().contains("INSECURE DEVELOPMENT MODE"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_realtime-server"))
        .args(["token", "alice", "--rooms", "team:*", "--ttl", "10m"])
        .env_remove("REALTIME_JWT_SECRET")
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let client = server.connect_with(token.trim(), &[]).await.unwrap();
    assert_eq!(client.user_id(), "alice");

    // Production without a key refuses to start, saying why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_realtime-server"))
        .env_remove("REALTIME_JWT_SECRET")
        .env("REALTIME__SERVER__ENVIRONMENT", "production")
        .env("REALTIME_PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to start"), "{stderr}");
}
