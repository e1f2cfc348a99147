//! Token revocation, as an administrator and a kicked user see it: a kick
//! with `revoke` sticks (across a restart, on both backends), a ban refuses
//! even fresh tokens until it ends, one token can be revoked by `jti`, and
//! `auth:refresh` with a revoked token ends the connection with 4001.
//! (Across nodes: tests/cluster.rs.)

#[macro_use]
mod common;

use std::time::Duration;

use common::{claims, Backend, Closed, Server, TestDb, ADMIN_KEY, WAIT};
use realtime_server::auth::{now_secs, Claims};
use serde_json::{json, Value};

on_both_backends!(a_kick_with_revoke_sticks_across_a_restart_until_lifted);
on_both_backends!(a_ban_refuses_fresh_tokens_until_it_ends);
on_both_backends!(one_token_is_revoked_by_its_jti_and_refresh_with_it_closes_4001);

/// A token for `user` issued now.
fn fresh(server: &Server, user: &str) -> String {
    server.token(user, &[])
}

/// Waits until the clock is past `secs`: a token minted then is issued
/// after a revocation made at `secs`.
async fn after_second(secs: u64) {
    while now_secs() <= secs {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refused(server: &Server, token: &str) -> String {
    match server.connect_with(token, &[]).await {
        Ok(_) => panic!("a revoked token was accepted"),
        Err((status, body)) => {
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["code"], "UNAUTHORIZED", "{body}");
            body["message"].as_str().unwrap().to_string()
        }
    }
}

async fn accepted(server: &Server, token: &str) {
    if let Err((status, body)) = server.connect_with(token, &[]).await {
        panic!("refused: {status} {body}");
    }
}

/// `issuedBefore`, read back as Unix seconds.
fn issued_before(revocation: &Value) -> u64 {
    let text = revocation["issuedBefore"].as_str().expect("issuedBefore");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp() as u64
}

async fn a_kick_with_revoke_sticks_across_a_restart_until_lifted(backend: Backend) {
    let db = TestDb::new(backend);
    let mut server = Server::start_on(&db, "");
    let old = fresh(&server, "alice");
    let mut alice = server.connect_with(&old, &[]).await.expect("connect");
    let mut bob = server.connect("bob", &[]).await;

    let answer = server
        .admin(
            "/admin/kick",
            json!({"userId": "alice", "reason": "spam", "revoke": true}),
        )
        .await;
    assert_eq!(answer["disconnected"], 1, "{answer}");
    let revocation = answer["revocation"].clone();
    assert_eq!(revocation["userId"], "alice", "{answer}");
    assert_eq!(revocation["reason"], "spam", "{answer}");
    assert!(revocation["banUntil"].is_null(), "{answer}");
    assert_eq!(alice.closed(WAIT).await, Closed::Code(4003));

    // Reloading the page with the same token does not undo the kick; other
    // users are untouched.
    let why = refused(&server, &old).await;
    assert!(why.contains("revoked"), "{why}");
    let pong = bob.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
    // A token issued after the kick works.
    after_second(issued_before(&revocation)).await;
    accepted(&server, &fresh(&server, "alice")).await;

    // The revocation is stored: a restarted server still refuses.
    server.terminate();
    assert!(server.wait_exit(WAIT).success());
    let server = Server::start_on(&db, "");
    refused(&server, &old).await;
    accepted(&server, &fresh(&server, "alice")).await;

    let list = server.admin_get("/admin/revocations").await;
    let ids: Vec<&Value> = list["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["revocationId"])
        .collect();
    assert_eq!(ids, [&revocation["revocationId"]], "{list}");

    // Lifted: the old token works again; lifting twice is a 404.
    let path = format!(
        "/admin/revocations/{}",
        revocation["revocationId"].as_str().unwrap()
    );
    let (status, body) = server.delete(&path, Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nodes"], 1, "{body}");
    accepted(&server, &old).await;
    let (status, body) = server.delete(&path, Some(ADMIN_KEY)).await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("NOT_FOUND")),
        "{body}"
    );
    let list = server.admin_get("/admin/revocations").await;
    assert_eq!(list["revocations"], json!([]), "{list}");

    // The audit log has both (written in the background: wait for them).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let audit = server.admin_get("/admin/audit?kind=revoke").await;
        let n = audit["events"].as_array().unwrap().len();
        if n == 2 {
            break;
        }
        assert!(
            n < 2 && tokio::time::Instant::now() < deadline,
            "made and lifted, once each: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_ban_refuses_fresh_tokens_until_it_ends(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let answer = server
        .admin("/admin/kick", json!({"userId": "alice", "banSeconds": 2}))
        .await;
    assert_eq!(answer["disconnected"], 0, "{answer}");
    let revocation = &answer["revocation"];
    let ban_end = chrono::DateTime::parse_from_rfc3339(revocation["banUntil"].as_str().unwrap())
        .unwrap()
        .timestamp() as u64;
    after_second(issued_before(revocation)).await;
    // Issued after the kick, and still refused while the ban runs (the
    // check is made before the end, so it cannot pass by the clock).
    let during = fresh(&server, "alice");
    if now_secs() < ban_end {
        let why = refused(&server, &during).await;
        assert!(why.contains("banned until"), "{why}");
    }
    // Once it ends, a token issued after the kick works; the one from
    // before the kick stays refused.
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.connect_with(&during, &[]).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused {WAIT:?} after a 2 s ban"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(now_secs() >= ban_end, "accepted before the ban ended");
    let before = server.mint(Claims {
        iat: Some(issued_before(revocation) - 10),
        ..claims("alice", 600)
    });
    refused(&server, &before).await;
    // Other users were never affected.
    accepted(&server, &fresh(&server, "bob")).await;
}

async fn one_token_is_revoked_by_its_jti_and_refresh_with_it_closes_4001(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let with_jti = |jti: &str| {
        server.mint(Claims {
            jti: Some(jti.into()),
            ..claims("alice", 600)
        })
    };
    let (stolen, other) = (with_jti("t-1"), with_jti("t-2"));
    let mut alice = server.connect_with(&other, &[]).await.expect("connect");

    let (status, made) = server
        .post(
            "/admin/revoke",
            Some(ADMIN_KEY),
            json!({"jti": "t-1", "until": "2099-01-01T00:00:00Z", "reason": "leaked"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["jti"], "t-1", "{made}");
    assert_eq!(made["until"], "2099-01-01T00:00:00.000Z", "{made}");
    assert_eq!(made["nodes"], 1, "{made}");
    let why = refused(&server, &stolen).await;
    assert!(why.contains("jti"), "{why}");
    accepted(&server, &other).await;

    // An open connection presenting the revoked token is told why and
    // closed with 4001.
    let answer = alice
        .request(json!({"type": "auth:refresh", "token": stolen}))
        .await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "UNAUTHORIZED", "{answer}");
    assert_eq!(alice.closed(WAIT).await, Closed::Code(4001));

    // An admin JWT revoked by jti no longer opens the admin API.
    let admin = server.mint(Claims {
        jti: Some("admin-1".into()),
        role: Some("admin".into()),
        ..claims("ops", 600)
    });
    let (status, _) = server.get("/admin/stats", Some(&admin)).await;
    assert_eq!(status, 200);
    server
        .post("/admin/revoke", Some(ADMIN_KEY), json!({"jti": "admin-1"}))
        .await;
    let (status, body) = server.get("/admin/stats", Some(&admin)).await;
    assert_eq!(status, 401, "{body}");

    // Bad requests are refused with a reason and change nothing.
    for (body, what) in [
        (json!({}), "exactly one of"),
        (json!({"userId": "a", "jti": "b"}), "exactly one of"),
        (json!({"jti": "b", "banSeconds": 5}), "banSeconds"),
        (
            json!({"userId": "a", "until": "1999-01-01T00:00:00Z"}),
            "future",
        ),
        (json!({"userId": "a", "until": "soon"}), "RFC 3339"),
        (json!({"userId": "a", "forever": true}), "unknown field"),
    ] {
        let (status, answer) = server.post("/admin/revoke", Some(ADMIN_KEY), body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], "BAD_REQUEST", "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(what), "{message}");
    }
    let (status, _) = server
        .post("/admin/revoke", None, json!({"userId": "alice"}))
        .await;
    assert_eq!(status, 401);
    let list = server.admin_get("/admin/revocations").await;
    assert_eq!(list["revocations"].as_array().unwrap().len(), 2, "{list}");
    accepted(&server, &other).await;
}
