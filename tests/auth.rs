//! Tokens at the upgrade, refresh and expiry, origins, anonymous access,
//! and admin authentication.

mod common;

use common::{claims, run_to_exit, scaled, Closed, Server, ADMIN_KEY, WAIT};
use realtime_server::auth::{now_secs, Claims};
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
    // A bad query token is refused by a close frame (4001) rather than an
    // HTTP 401, which a browser could not read: tests/browser_refusals.rs.
    drop(client);
    server
        .wait_stats("the connection to be gone", |s| s["connections"] == 0)
        .await;
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
    // Long enough for two connects and three requests on a busy machine.
    let life = scaled(6000).as_secs() as i64;
    let short = server.mint(claims("alice", life));
    let mut alice = server.connect_with(&short, &[]).await.unwrap();
    let mut bob = server
        .connect_with(&server.mint(claims("bob", life)), &[])
        .await
        .unwrap();

    // A token for someone else is refused.
    let other = server.mint(claims("mallory", 3600));
    let e = alice
        .request(json!({"type": "auth:refresh", "token": other}))
        .await;
    assert_eq!(
        (&e["code"], &e["message"]),
        (
            &json!("UNAUTHORIZED"),
            &json!("the new token is for a different user (sub)")
        )
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
    assert_eq!(bob.closed(WAIT).await, Closed::Code(4001));
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
    // No Origin at all (a backend or a CLI tool): refused too, unless
    // allowed by `server.allow_missing_origin`.
    let (status, _) = server.connect_with(&token, &[]).await.err().unwrap();
    assert_eq!(status, 403);
    let server = Server::start_with_env(
        "",
        &[
            ("REALTIME__SERVER__ORIGINS", "https://app.example"),
            ("REALTIME__SERVER__ALLOW_MISSING_ORIGIN", "true"),
        ],
    );
    let token = server.token("a", &[]);
    server.connect_with(&token, &[]).await.unwrap();
    let (status, _) = server
        .connect_with(&token, &[("Origin", "https://evil.example")])
        .await
        .err()
        .unwrap();
    assert_eq!(status, 403, "a foreign Origin is still refused");
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
    // Logged before the server listens, so it is there already.
    assert!(server.log().contains("INSECURE DEVELOPMENT MODE"));
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_realtime-server"))
        .args([
            "token",
            "alice",
            "--rooms",
            "team:*",
            "--ttl",
            "10m",
            "--roles",
            "staff,beta",
        ])
        .env_clear()
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let client = server.connect_with(token.trim(), &[]).await.unwrap();
    assert_eq!(client.user_id(), "alice");
    // Its `roles` claim (`--roles`) is what announcements target.
    let (status, answer) = server
        .post(
            "/admin/announcements",
            Some(ADMIN_KEY),
            json!({"title": "t", "message": "m", "type": "feature", "targetRoles": ["beta"]}),
        )
        .await;
    assert_eq!((status, &answer["delivered"]), (201, &json!(1)), "{answer}");

    // Production without a key refuses to start, saying why: run with a
    // clean environment, in a directory of its own, and a deadline (a
    // regression would start a server that never exits).
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = run_to_exit(
        &[],
        &[("REALTIME__SERVER__ENVIRONMENT", "production")],
        dir.path(),
    );
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
}

#[actix_rt::test]
async fn refresh_moves_the_expiry_and_the_new_claims_decide_later_access() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &["a:*"]).await;
    alice.join("a:1").await;
    // A new token: other rooms, and an expiry sooner than the old hour.
    let life = scaled(4000).as_secs();
    let exp = now_secs() + life;
    let fresh = server.mint(Claims {
        rooms: Some(vec!["b:*".into()]),
        exp,
        ..claims("alice", 0)
    });
    let reply = alice
        .ok(json!({"type": "auth:refresh", "token": fresh}))
        .await;
    assert!(
        reply["expiresAt"].as_str().unwrap().ends_with(".000Z"),
        "{reply}"
    );
    // The new rooms claim decides joins from now on...
    alice.join("b:1").await;
    assert_eq!(
        alice.err(json!({"type": "room:join", "room": "a:2"})).await,
        "FORBIDDEN"
    );
    assert_eq!(
        alice
            .err(json!({"type": "history:get", "room": "a:2"}))
            .await,
        "FORBIDDEN"
    );
    // ...and a room joined before stays joined.
    alice
        .ok(json!({"type": "message:send", "room": "a:1", "content": "still here"}))
        .await;
    // Closed with 4001 at the new exp, not an hour later, and not before it.
    assert_eq!(alice.closed(WAIT).await, Closed::Code(4001));
    assert!(now_secs() >= exp, "closed before the new exp");
}

#[actix_rt::test]
async fn refresh_is_refused_on_anonymous_connections() {
    let server = Server::start_with_env("", &[("REALTIME__SERVER__ANONYMOUS", "true")]);
    let mut anon = server.connect_with("", &[]).await.unwrap();
    let token = server.token(&anon.user_id(), &[]);
    let e = anon
        .request(json!({"type": "auth:refresh", "token": token}))
        .await;
    assert_eq!(
        (&e["code"], &e["message"]),
        (
            &json!("BAD_REQUEST"),
            &json!("anonymous connections have no token to refresh")
        )
    );
    // The connection stays open.
    assert_eq!(anon.request(json!({"type": "ping"})).await["type"], "pong");
}

#[actix_rt::test]
async fn control_characters_in_sub_or_name_are_refused_at_the_upgrade() {
    let server = Server::start("");
    let cases = [
        ("newline in sub", claims("ali\nce", 3600)),
        ("NUL in sub", claims("ali\u{0}ce", 3600)),
        ("empty sub", claims("", 3600)),
        (
            "escape in name",
            Claims {
                name: Some("Alice\u{1b}[2J".into()),
                ..claims("alice", 3600)
            },
        ),
    ];
    for (what, claims) in cases {
        let (status, body) = server
            .connect_with(&server.mint(claims), &[])
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(status, 401, "{what}");
        let expected = if what.contains("name") {
            "invalid token: `name` must be text without control or bidirectional-control characters"
        } else {
            "invalid token: `sub` must be non-empty text without control or invisible characters"
        };
        assert_eq!(body["message"], expected, "{what}: {body}");
    }
}

#[actix_rt::test]
async fn the_authorization_header_beats_the_query_token_and_post_gets_405() {
    let server = Server::start("");
    let bearer = format!("Bearer {}", server.token("alice", &[]));
    let query = format!("token={}", server.token("bob", &[]));
    let both = server
        .connect_request(&query, &[("Authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(both.user_id(), "alice");
    // A bad query token does not matter when the header is good...
    let client = server
        .connect_request("token=garbage", &[("Authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(client.user_id(), "alice");
    // ...and a bad header is not rescued by a good query token.
    let (status, _) = server
        .connect_request(&query, &[("Authorization", "Bearer garbage")])
        .await
        .err()
        .unwrap();
    assert_eq!(status, 401);
    // An empty token counts as none (here from a header-less client that
    // is not a browser, so the refusal stays HTTP; a `token=` query is a
    // browser's and gets close 4001, tests/browser_refusals.rs).
    let (status, body) = server.connect_request("", &[]).await.err().unwrap();
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("missing token"),
        "{body}"
    );
    let (status, body) = server.post("/ws", None, json!({})).await;
    assert_eq!(
        (status, &body),
        (
            405,
            &json!({"code": "METHOD_NOT_ALLOWED", "message": "method not allowed on this endpoint"})
        )
    );
}

/// Every refused handshake is counted by reason and logged with it (at
/// info), so an operator can tell a bad token from a foreign Origin.
#[actix_rt::test]
async fn refusals_are_counted_and_logged_by_reason() {
    let server =
        Server::start_with_env("", &[("REALTIME__SERVER__ORIGINS", "https://app.example")]);
    let token = server.token("alice", &[]);
    let origin = [("Origin", "https://app.example")];
    let (status, _) = server.connect_with("garbage", &origin).await.err().unwrap();
    assert_eq!(status, 401);
    let (status, _) = server
        .connect_with(&token, &[("Origin", "https://evil.example")])
        .await
        .err()
        .unwrap();
    assert_eq!(status, 403);
    let text = server.get_text("/metrics").await.1;
    let count = |reason: &str| {
        common::series(
            &text,
            "realtime_handshakes_refused_total",
            &format!("reason=\"{reason}\""),
        )
    };
    assert_eq!((count("bad_token"), count("origin")), (1, 1), "{text}");
    assert_eq!(
        count("node_full"),
        0,
        "every reason is there from the start"
    );
    let log = server.log();
    assert!(log.contains("handshake refused (401, bad_token)"), "{log}");
    assert!(
        log.contains("handshake refused (403, origin)") && log.contains("origin not allowed"),
        "{log}"
    );
}
