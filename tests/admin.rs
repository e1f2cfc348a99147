//! The admin HTTP API and the health, readiness and metrics endpoints.

mod common;

use common::{Closed, Server, ADMIN_KEY, WAIT};
use serde_json::json;

#[actix_rt::test]
async fn kick_closes_every_connection_of_the_user_with_4003() {
    let server = Server::start("");
    let mut a1 = server.connect("alice", &["r"]).await;
    let mut a2 = server.connect("alice", &["r"]).await;
    let mut bob = server.connect("bob", &["r"]).await;
    a1.join("r").await;
    a2.join("r").await;
    bob.join("r").await;

    let answer = server
        .admin("/admin/kick", json!({"userId": "alice", "reason": "spam"}))
        .await;
    assert_eq!(answer, json!({"disconnected": 2}));
    assert_eq!(a1.closed(WAIT).await, Closed::Code(4003));
    assert_eq!(a2.closed(WAIT).await, Closed::Code(4003));
    // Alice's last connection left the room.
    assert_eq!(bob.expect("user:left").await["userId"], "alice");
    // Bob is untouched, and nothing of alice remains.
    bob.request(json!({"type": "ping"})).await;
    server
        .wait_stats("alice's connections to be gone", |s| s["connections"] == 1)
        .await;
    let list = server.admin_get("/admin/connections?userId=alice").await;
    assert_eq!(list["connections"], json!([]));
    let presence = server.admin_get("/admin/rooms/r/presence").await;
    assert_eq!(presence["members"].as_array().unwrap().len(), 1);
    assert_eq!(
        server
            .admin("/admin/kick", json!({"userId": "nobody"}))
            .await,
        json!({"disconnected": 0})
    );
    assert!(server.log().contains("kick conn="));
}

#[actix_rt::test]
async fn notify_reaches_all_of_the_users_connections_and_no_one_else() {
    let server = Server::start("");
    let mut a1 = server.connect("alice", &[]).await;
    let mut a2 = server.connect("alice", &[]).await;
    let mut bob = server.connect("bob", &[]).await;
    let answer = server
        .admin(
            "/admin/notify",
            json!({"userId": "alice", "kind": "warning", "title": "Disk", "body": "almost full", "data": {"pct": 93}}),
        )
        .await;
    assert_eq!(answer["delivered"], 2);
    let id = answer["notificationId"].as_str().unwrap().to_string();
    for c in [&mut a1, &mut a2] {
        let n = c.expect("notification").await;
        assert_eq!(n["notificationId"], id.as_str());
        assert_eq!(n["kind"], "warning");
        assert_eq!(n["title"], "Disk");
        assert_eq!(n["body"], "almost full");
        assert_eq!(n["data"], json!({"pct": 93}));
        assert!(n["createdAt"].as_str().unwrap().ends_with('Z'));
    }
    bob.expect_silence().await;
    a1.ok(json!({"type": "notification:read", "notificationId": id}))
        .await;
    // Bad bodies get the error shape.
    let (status, body) = server
        .post("/admin/notify", Some(ADMIN_KEY), json!({"userId": "alice"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (400, "BAD_REQUEST")
    );
    let (status, body) = server
        .post(
            "/admin/notify",
            Some(ADMIN_KEY),
            json!({"userId": "a", "title": "t", "kind": "loud"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (400, "BAD_REQUEST")
    );
}

#[actix_rt::test]
async fn broadcast_to_a_room_and_to_everyone() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &["news"]).await;
    let mut bob = server.connect("bob", &[]).await;
    alice.join("news").await;
    let answer = server
        .admin(
            "/admin/broadcast",
            json!({"room": "news", "event": "deploy", "data": {"v": 2}}),
        )
        .await;
    assert_eq!(answer, json!({"delivered": 1}));
    let b = alice.expect("broadcast").await;
    assert_eq!(
        (b["room"].clone(), b["event"].clone(), b["data"].clone()),
        (json!("news"), json!("deploy"), json!({"v": 2}))
    );
    bob.expect_silence().await;
    let answer = server
        .admin(
            "/admin/broadcast",
            json!({"event": "maintenance", "data": null}),
        )
        .await;
    assert_eq!(answer, json!({"delivered": 2}));
    for c in [&mut alice, &mut bob] {
        let b = c.expect("broadcast").await;
        assert_eq!(b["event"], "maintenance");
        assert!(b.get("room").is_none(), "{b}");
    }
    let (status, _) = server
        .post(
            "/admin/broadcast",
            Some(ADMIN_KEY),
            json!({"room": "bad room", "event": "x"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[actix_rt::test]
async fn stats_connections_rooms_presence_and_metrics() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &["r"]).await;
    let mut bob = server.connect("bob", &["r"]).await;
    alice.join("r").await;
    bob.join("r").await;
    alice
        .ok(json!({"type": "message:send", "room": "r", "content": "hi"}))
        .await;

    let stats = server.admin_get("/admin/stats").await;
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["users"], 2);
    assert_eq!(stats["messagesIn"], 1);
    assert!(stats["messagesOut"].as_u64().unwrap() >= 2);
    assert_eq!(stats["nodes"].as_array().unwrap().len(), 1);
    assert!(stats["nodes"][0]["nodeId"]
        .as_str()
        .unwrap()
        .starts_with("node-"));

    let conns = server.admin_get("/admin/connections").await["connections"].clone();
    assert_eq!(conns.as_array().unwrap().len(), 2);
    let mine = server.admin_get("/admin/connections?userId=alice").await["connections"].clone();
    assert_eq!(mine[0]["connectionId"], alice.connection_id().as_str());
    assert_eq!(mine[0]["rooms"], json!(["r"]));

    let rooms = server.admin_get("/admin/rooms").await["rooms"].clone();
    let r = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "r")
        .unwrap();
    assert_eq!(
        (r["users"].clone(), r["connections"].clone()),
        (json!(2), json!(2))
    );

    let members = server.admin_get("/admin/rooms/r/presence").await["members"].clone();
    let ids: Vec<_> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("alice"), json!("bob")]);

    let (status, health) = server.get("/health", None).await;
    assert_eq!((status, health["status"].as_str().unwrap()), (200, "ok"));
    let (status, ready) = server.get("/ready", None).await;
    assert_eq!((status, ready["status"].as_str().unwrap()), (200, "ok"));
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "realtime_connections{",
        "realtime_messages_in_total{",
        "realtime_messages_out_total{",
        "realtime_rate_limited_total{",
        "realtime_slow_consumer_closes_total{",
        "realtime_mailbox_depth{",
        "actor=\"session\"",
        "actor=\"room_registry\"",
        "actor=\"presence_tracker\"",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
    let connections: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("realtime_connections{node="))
        .collect();
    assert!(
        connections.len() == 1 && connections[0].ends_with("} 2"),
        "realtime_connections must be 2: {connections:?}"
    );
    let (status, body) = server.get("/admin/kick", Some(ADMIN_KEY)).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (405, "METHOD_NOT_ALLOWED")
    );
    let (status, body) = server.get("/nope", None).await;
    assert_eq!((status, body["code"].as_str().unwrap()), (404, "NOT_FOUND"));

    // HEAD answers as GET does, without a body (load balancers probe so).
    for path in ["/health", "/ready", "/metrics"] {
        let mut res = awc::Client::default()
            .head(server.url(path))
            .send()
            .await
            .expect("HEAD");
        assert_eq!(res.status().as_u16(), 200, "HEAD {path}");
        let body = res.body().await.expect("body");
        assert!(body.is_empty(), "HEAD {path} sent a body");
    }
    let mut res = awc::Client::default()
        .head(server.url("/admin/kick"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(res.status().as_u16(), 405, "HEAD of a POST endpoint");
    let _ = res.body().await;
}
