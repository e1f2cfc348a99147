//! Several real server processes sharing the real Redis (tests/common/services.rs,
//! a prefix per test) and one PostgreSQL database behave as one server.

mod common;

use std::time::Duration;

use common::{
    redis_prefix, redis_url, start_node, user_ids, Backend, Closed, PrivateRedis, Server, TestDb,
    ADMIN_KEY, WAIT,
};
use serde_json::json;

/// A fresh PostgreSQL database and two nodes sharing it and a Redis prefix
/// of their own, ready. Bind all four: the nodes must stop before the
/// database goes.
async fn two_nodes() -> (TestDb, String, Server, Server) {
    let db = TestDb::new(Backend::Postgres);
    let (prefix, a, b) = common::two_nodes(&db).await;
    (db, prefix, a, b)
}

/// Waits until `node` knows these members of `room`: each node keeps a
/// copy of every node's presence, fed through Redis, so a join on one node
/// reaches the others' copies a moment later.
async fn wait_members(node: &Server, room: &str, expected: &[&str]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let presence = node
            .admin_get(&format!("/admin/rooms/{room}/presence"))
            .await;
        if user_ids(&presence["members"]) == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{room} never had exactly {expected:?} there: {presence}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn messages_cross_nodes_once_in_seq_order() {
    let (_db, _prefix, a, b) = two_nodes().await;
    let mut clients = Vec::new();
    for (i, node) in [&a, &b, &a, &b].into_iter().enumerate() {
        let mut c = node.connect(&format!("user{i}"), &["r"]).await;
        c.join("r").await;
        clients.push(c);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            actix_rt::spawn(async move {
                for j in 0..25 {
                    c.send(json!({"type": "message:send", "room": "r", "content": format!("{j}"), "id": j})).await;
                }
                let mut seen = Vec::new();
                let mut replies = 0;
                while replies < 25 || seen.len() < 100 {
                    let f = c.next().await;
                    match f["type"].as_str().unwrap() {
                        "message:new" => seen.push(f["seq"].as_u64().unwrap()),
                        "reply" => replies += 1,
                        "user:joined" | "user:left" => {}
                        _ => panic!("unexpected {f}"),
                    }
                }
                (seen, c)
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        let (seen, c) = t.await.unwrap();
        assert_eq!(
            seen,
            (1..=100).collect::<Vec<u64>>(),
            "every member, on every node, gets each message once in order"
        );
        done.push(c);
    }
    for c in &mut done {
        c.expect_silence().await;
    }
}

/// The first two messages of a room new to both nodes race: a node can
/// commit seq 2 itself before the other node's seq 1 reaches it over Redis.
/// Both must still reach every member, in order (a room whose newest seq is
/// 0 once took the first message it saw as its start and dropped seq 1).
#[actix_rt::test]
async fn the_first_messages_of_new_rooms_race_across_nodes_without_loss() {
    let (_db, _prefix, a, b) = two_nodes().await;
    let mut on_a = a.connect("alice", &["race:*"]).await;
    let mut on_b = b.connect("bob", &["race:*"]).await;
    for i in 0..20 {
        let room = format!("race:{i}");
        on_a.join(&room).await;
        on_b.join(&room).await;
        on_a.drain().await;
        for (id, c) in [&mut on_a, &mut on_b].into_iter().enumerate() {
            c.send(json!({"type": "message:send", "room": room, "content": "x", "id": id}))
                .await;
        }
        for c in [&mut on_a, &mut on_b] {
            let mut seqs = Vec::new();
            let mut replied = false;
            while !replied || seqs.len() < 2 {
                let f = c.next().await;
                match f["type"].as_str().unwrap() {
                    "message:new" => seqs.push(f["seq"].as_u64().unwrap()),
                    "reply" => replied = true,
                    "user:joined" => {} // the other node's join, relayed
                    _ => panic!("unexpected {f}"),
                }
            }
            assert_eq!(seqs, [1, 2], "room {room}: both first messages, in order");
        }
    }
    on_a.expect_silence().await;
    on_b.expect_silence().await;
}

/// A message's metadata crosses nodes as sent, in `message:new` and in an
/// edit's `message:updated` (it was once unreadable on the other node: the
/// event was logged as unreadable and never delivered there).
#[actix_rt::test]
async fn metadata_crosses_nodes_with_the_message_and_its_edit() {
    let (_db, _prefix, a, b) = two_nodes().await;
    let mut alice = a.connect("alice", &["meta"]).await;
    let mut bob = b.connect("bob", &["meta"]).await;
    alice.join("meta").await;
    bob.join("meta").await;
    wait_members(&a, "meta", &["alice", "bob"]).await;
    alice.drain().await;
    let metadata = json!({"mentions": ["bob"], "ratio": 2.5, "nested": {"a": [1, {"b": null}]}});
    alice
        .send(json!({"type": "message:send", "room": "meta", "content": "hi", "metadata": metadata, "id": 1}))
        .await;
    let got = bob.expect("message:new").await;
    assert_eq!(
        (&got["content"], &got["metadata"]),
        (&json!("hi"), &metadata)
    );
    let edited = json!({"mentions": [], "edited": true});
    alice
        .send(
            json!({"type": "message:edit", "room": "meta", "messageId": got["messageId"],
                     "content": "hi!", "metadata": edited, "id": 2}),
        )
        .await;
    let update = bob.expect("message:updated").await;
    assert_eq!(
        (&update["content"], &update["metadata"]),
        (&json!("hi!"), &edited)
    );
    bob.expect_silence().await;
}

#[actix_rt::test]
async fn presence_join_leave_and_typing_span_nodes() {
    let (_db, _prefix, a, b) = two_nodes().await;
    let mut alice = a.connect("alice", &["r"]).await;
    alice.join("r").await;
    wait_members(&b, "r", &["alice"]).await;
    let mut bob = b.connect("bob", &["r"]).await;
    let joined = bob.join("r").await;
    assert_eq!(
        user_ids(&joined["members"]),
        vec!["alice", "bob"],
        "{joined}"
    );
    assert_eq!(alice.expect("user:joined").await["userId"], "bob");
    // A second connection of bob, on the other node: not a new user.
    let mut bob2 = a.connect("bob", &["r"]).await;
    bob2.join("r").await;
    alice.expect_silence().await;
    let members = alice.ok(json!({"type": "presence:get", "room": "r"})).await["members"].clone();
    assert_eq!(user_ids(&members), vec!["alice", "bob"]);
    assert_eq!(members[1]["connections"], 2);
    let admin = b.admin_get("/admin/rooms/r/presence").await;
    assert_eq!(user_ids(&admin["members"]), vec!["alice", "bob"]);

    // Typing and presence changes cross too.
    bob.ok(json!({"type": "typing:start", "room": "r"})).await;
    assert_eq!(alice.expect("typing:event").await["users"], json!(["bob"]));
    assert_eq!(bob2.expect("typing:event").await["users"], json!(["bob"]));
    bob.ok(json!({"type": "typing:stop", "room": "r"})).await;
    assert_eq!(alice.expect("typing:event").await["users"], json!([]));
    bob2.expect("typing:event").await;
    bob.ok(json!({"type": "presence:update", "status": "away"}))
        .await;
    assert_eq!(alice.expect("presence:changed").await["status"], "away");
    assert_eq!(bob2.expect("presence:changed").await["status"], "away");

    // bob's last connection anywhere leaving: one user:left.
    bob2.ok(json!({"type": "room:leave", "room": "r"})).await;
    alice.expect_silence().await;
    drop(bob);
    assert_eq!(alice.expect("user:left").await["userId"], "bob");
    alice.expect_silence().await;
}

#[actix_rt::test]
async fn admin_calls_act_on_every_node_and_add_up() {
    let (_db, _prefix, a, b) = two_nodes().await;
    let mut on_a = a.connect("alice", &["news"]).await;
    let mut on_b = b.connect("alice", &["news"]).await;
    let mut carol = b.connect("carol", &["news"]).await;
    on_a.join("news").await;
    on_b.join("news").await;
    carol.join("news").await;
    // Both of alice's connections hear of carol, on_a through Redis: the
    // nodes know each other's members now.
    for c in [&mut on_a, &mut on_b] {
        loop {
            let f = c.next().await;
            if f["type"] == "user:joined" && f["userId"] == "carol" {
                break;
            }
        }
    }
    for c in [&mut on_a, &mut on_b, &mut carol] {
        c.drain().await;
    }

    let answer = a
        .admin("/admin/notify", json!({"userId": "alice", "title": "hi"}))
        .await;
    assert_eq!(answer["delivered"], 2);
    assert_eq!(on_a.expect("notification").await["title"], "hi");
    assert_eq!(on_b.expect("notification").await["title"], "hi");
    carol.expect_silence().await;

    let answer = b
        .admin(
            "/admin/broadcast",
            json!({"room": "news", "event": "e", "data": 1}),
        )
        .await;
    assert_eq!(answer["delivered"], 3);
    let answer = a
        .admin("/admin/broadcast", json!({"event": "all", "data": 2}))
        .await;
    assert_eq!(answer["delivered"], 3);
    for c in [&mut on_a, &mut on_b, &mut carol] {
        assert_eq!(c.expect("broadcast").await["event"], "e");
        assert_eq!(c.expect("broadcast").await["event"], "all");
    }

    let stats = a.admin_get("/admin/stats").await;
    assert_eq!(stats["connections"], 3, "{stats}");
    let nodes: Vec<&str> = stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["nodeId"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, vec!["node-a", "node-b"]);
    let conns = b.admin_get("/admin/connections?userId=alice").await["connections"].clone();
    assert_eq!(conns.as_array().unwrap().len(), 2);
    let rooms = a.admin_get("/admin/rooms").await["rooms"].clone();
    let news = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "news")
        .unwrap()
        .clone();
    assert_eq!(news["connections"], 3, "{rooms}");

    // Kick from node b closes alice on both nodes.
    let answer = b
        .admin("/admin/kick", json!({"userId": "alice", "reason": "bye"}))
        .await;
    assert_eq!(answer["disconnected"], 2);
    assert_eq!(on_a.closed(WAIT).await, Closed::Code(4003));
    assert_eq!(on_b.closed(WAIT).await, Closed::Code(4003));
    assert_eq!(carol.expect("user:left").await["userId"], "alice");
}

#[actix_rt::test]
async fn a_kick_with_revoke_holds_on_every_node_and_a_lift_too() {
    let (_db, _prefix, a, b) = two_nodes().await;
    let old = a.token("alice", &[]);
    let mut on_a = a.connect_with(&old, &[]).await.expect("connect");
    let mut on_b = b.connect_with(&old, &[]).await.expect("connect");

    let answer = a
        .admin("/admin/kick", json!({"userId": "alice", "revoke": true}))
        .await;
    assert_eq!(answer["disconnected"], 2, "{answer}");
    assert_eq!(on_a.closed(WAIT).await, Closed::Code(4003));
    assert_eq!(on_b.closed(WAIT).await, Closed::Code(4003));
    // Node b put the revocation in force before it closed alice there.
    for node in [&a, &b] {
        let (status, body) = node.connect_with(&old, &[]).await.err().expect("refused");
        assert_eq!(status, 401, "{body}");
    }

    // Lifted through node b: the old token opens node a again.
    let id = answer["revocation"]["revocationId"].as_str().unwrap();
    let (status, body) = b
        .delete(&format!("/admin/revocations/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nodes"], 2, "{body}");
    a.connect_with(&old, &[])
        .await
        .expect("accepted after the lift");

    // A revocation by jti made on node b holds on node a at once.
    let token = a.mint(realtime_server::auth::Claims {
        jti: Some("t-9".into()),
        ..common::claims("carol", 600)
    });
    let (status, made) = b
        .post("/admin/revoke", Some(ADMIN_KEY), json!({"jti": "t-9"}))
        .await;
    assert_eq!((status, &made["nodes"]), (201, &json!(2)), "{made}");
    let (status, _) = a.connect_with(&token, &[]).await.err().expect("refused");
    assert_eq!(status, 401);
}

#[actix_rt::test]
async fn a_killed_node_leaves_presence_once_and_does_not_come_back() {
    let (db, prefix, a, mut b) = two_nodes().await;
    let mut alice = a.connect("alice", &["r"]).await;
    alice.join("r").await;
    let mut bob = b.connect("bob", &["r"]).await;
    bob.join("r").await;
    let mut dave = b.connect("dave", &["r"]).await;
    dave.join("r").await;
    assert_eq!(alice.expect("user:joined").await["userId"], "bob");
    assert_eq!(alice.expect("user:joined").await["userId"], "dave");

    // Nodes give up on a silent node after their node_ttl_ms (4 s here,
    // see start_node; the default 30 s would outlast `expect`).
    b.kill9();
    let mut left = vec![
        alice.expect("user:left").await["userId"]
            .as_str()
            .unwrap()
            .to_string(),
        alice.expect("user:left").await["userId"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    left.sort();
    assert_eq!(left, vec!["bob", "dave"]);
    alice.expect_silence().await;
    let members = alice.ok(json!({"type": "presence:get", "room": "r"})).await["members"].clone();
    assert_eq!(user_ids(&members), vec!["alice"]);

    // The same node id again: nothing of the old bob or dave comes back.
    let b = start_node(&db, redis_url(), &prefix, "node-b", &[]);
    b.wait_ready().await;
    let mut erin = b.connect("erin", &["r"]).await;
    let joined = erin.join("r").await;
    assert_eq!(user_ids(&joined["members"]), vec!["alice", "erin"]);
    assert_eq!(alice.expect("user:joined").await["userId"], "erin");
    alice.expect_silence().await;
    let members = alice.ok(json!({"type": "presence:get", "room": "r"})).await["members"].clone();
    assert_eq!(user_ids(&members), vec!["alice", "erin"]);
}

#[actix_rt::test]
async fn redis_restarting_mid_traffic_loses_nothing_for_good() {
    let db = TestDb::new(Backend::Postgres);
    let mut redis = PrivateRedis::start();
    let prefix = redis_prefix();
    let a = start_node(&db, &redis.url(), &prefix, "node-a", &[]);
    a.wait_ready().await;
    let b = start_node(&db, &redis.url(), &prefix, "node-b", &[]);
    b.wait_ready().await;
    let mut alice = a.connect("alice", &["r"]).await;
    let mut carol = a.connect("carol", &["r"]).await;
    let mut bob = b.connect("bob", &["r"]).await;
    for c in [&mut alice, &mut carol, &mut bob] {
        c.join("r").await;
    }
    alice
        .ok(json!({"type": "message:send", "room": "r", "content": "1"}))
        .await;
    for c in [&mut alice, &mut carol, &mut bob] {
        let seq = loop {
            let f = c.next().await;
            if f["type"] == "message:new" {
                break f["seq"].as_u64().unwrap();
            }
        };
        assert_eq!(seq, 1);
    }

    redis.stop();
    // Local delivery goes on.
    alice
        .ok(json!({"type": "message:send", "room": "r", "content": "2"}))
        .await;
    assert_eq!(alice.expect("message:new").await["seq"], 2);
    assert_eq!(carol.expect("message:new").await["seq"], 2);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, ready) = a.get("/ready", None).await;
        if status == 503 {
            assert_eq!(ready["checks"]["redis"], "down", "{ready}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready never reported Redis down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    redis.restart();
    for node in [&a, &b] {
        node.wait_ready().await;
    }
    // The next message shows bob the gap, which is filled from the database.
    alice
        .ok(json!({"type": "message:send", "room": "r", "content": "3"}))
        .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let f = bob.next().await;
        assert_eq!(f["type"], "message:new", "bob saw a presence flap: {f}");
        seen.push(f["seq"].as_u64().unwrap());
    }
    assert_eq!(seen, vec![2, 3]);
    // Nobody left or joined while Redis was away: presence did not flap.
    for c in [&mut alice, &mut carol] {
        for f in c.drain().await {
            assert_eq!(f["type"], "message:new", "{f}");
        }
    }
    let members = bob.ok(json!({"type": "presence:get", "room": "r"})).await["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 3, "{members}");
}
