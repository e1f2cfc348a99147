//! Rooms, messages, recovery, typing and presence, as clients see them.

mod common;

use std::time::Instant;

use common::{scaled, Server};
use serde_json::json;

#[actix_rt::test]
async fn two_users_exchange_messages_with_consecutive_seqs() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &["team:1:*"]).await;
    let mut bob = server.connect("bob", &["team:1:*"]).await;
    assert_eq!(alice.connected["protocolVersion"], 1);
    assert_eq!(alice.connected["userId"], "alice");
    assert_eq!(alice.connected["heartbeatIntervalMs"], 25000);

    let joined = alice.join("team:1:general").await;
    assert_eq!(joined["room"], "team:1:general");
    assert_eq!(joined["seq"], 0);
    assert_eq!(joined["recovered"], true);
    assert_eq!(joined["missed"], json!([]));
    bob.join("team:1:general").await;
    assert_eq!(alice.expect("user:joined").await["userId"], "bob");

    let mut seqs = Vec::new();
    for i in 0..3 {
        let (sender, receiver) = if i % 2 == 0 {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        let reply = sender
            .ok(json!({"type": "message:send", "room": "team:1:general", "content": format!("hello {i}"),
                        "metadata": {"k": i}, "threadId": "t1"}))
            .await;
        let seq = reply["seq"].as_u64().unwrap();
        seqs.push(seq);
        let got = receiver.expect("message:new").await;
        assert_eq!(got["seq"], seq);
        assert_eq!(got["messageId"], reply["messageId"]);
        assert_eq!(got["content"], format!("hello {i}"));
        assert_eq!(got["userId"], sender.user_id());
        assert_eq!(got["metadata"], json!({"k": i}));
        assert_eq!(got["threadId"], "t1");
        assert_eq!(got["timestamp"], reply["timestamp"]);
        // The sender's own connection gets the message too.
        assert_eq!(sender.expect("message:new").await["seq"], seq);
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    alice.expect_silence().await;
    bob.expect_silence().await;
}

#[actix_rt::test]
async fn join_leave_presence_and_typing_reach_the_right_people_once() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &["room:a"]).await;
    let mut alice2 = server.connect("alice", &["room:a"]).await;
    let mut bob = server.connect("bob", &["room:a"]).await;
    let mut carol = server.connect("carol", &["room:b"]).await;
    carol.join("room:b").await;

    alice.join("room:a").await;
    let joined = bob.join("room:a").await;
    let members: Vec<_> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].clone())
        .collect();
    assert_eq!(members, vec![json!("alice"), json!("bob")]);
    assert_eq!(
        alice.expect("user:joined").await,
        json!({"type": "user:joined", "room": "room:a", "userId": "bob"})
    );

    // Alice's second connection joining is not a new user: no event.
    alice2.join("room:a").await;
    bob.expect_silence().await;

    // Typing goes to the others in the room, not to the typer, not outside.
    bob.ok(json!({"type": "typing:start", "room": "room:a"}))
        .await;
    for c in [&mut alice, &mut alice2] {
        let ev = c.expect("typing:event").await;
        assert_eq!(ev["users"], json!(["bob"]));
        assert_eq!(ev["threadId"], json!(null));
    }
    // Starting again while typing changes nothing: no second event.
    bob.ok(json!({"type": "typing:start", "room": "room:a"}))
        .await;
    bob.ok(json!({"type": "typing:stop", "room": "room:a"}))
        .await;
    for c in [&mut alice, &mut alice2] {
        assert_eq!(c.expect("typing:event").await["users"], json!([]));
    }

    // Presence changes go to everyone sharing a room, once, and not to carol.
    alice.ok(json!({"type": "presence:update", "status": "busy", "customStatus": {"text": "focus", "emoji": "🎧"}})).await;
    let changed = bob.expect("presence:changed").await;
    assert_eq!(changed["userId"], "alice");
    assert_eq!(changed["status"], "busy");
    assert_eq!(changed["customStatus"]["text"], "focus");
    assert_eq!(alice2.expect("presence:changed").await["status"], "busy");
    let members = bob
        .ok(json!({"type": "presence:get", "room": "room:a"}))
        .await["members"]
        .clone();
    assert_eq!(members[0]["userId"], "alice");
    assert_eq!(members[0]["status"], "busy");
    assert_eq!(members[0]["connections"], 2);
    assert_eq!(members[0]["name"], "alice name");

    // One of alice's two connections leaving: not the last, no event.
    alice2
        .ok(json!({"type": "room:leave", "room": "room:a"}))
        .await;
    bob.expect_silence().await;
    // The last one leaving: user:left, once.
    assert_eq!(
        alice
            .ok(json!({"type": "room:leave", "room": "room:a"}))
            .await["room"],
        "room:a"
    );
    assert_eq!(
        bob.expect("user:left").await,
        json!({"type": "user:left", "room": "room:a", "userId": "alice"})
    );

    // Disconnecting is leaving too.
    drop(alice);
    drop(alice2);
    let mut dave = server.connect("dave", &["room:a"]).await;
    dave.join("room:a").await;
    assert_eq!(bob.expect("user:joined").await["userId"], "dave");
    drop(dave);
    assert_eq!(bob.expect("user:left").await["userId"], "dave");

    bob.expect_silence().await;
    carol.expect_silence().await;
}

#[actix_rt::test]
async fn typing_expires_without_typing_stop() {
    // Long enough that a busy machine's delays are small beside it.
    let timeout = scaled(2000);
    let server = Server::start(&format!("[typing]\ntimeout_ms = {}\n", timeout.as_millis()));
    let mut alice = server.connect("alice", &["r"]).await;
    let mut bob = server.connect("bob", &["r"]).await;
    alice.join("r").await;
    bob.join("r").await;
    alice.expect("user:joined").await;
    let started = Instant::now();
    bob.ok(json!({"type": "typing:start", "room": "r", "threadId": "th"}))
        .await;
    let ev = alice.expect("typing:event").await;
    assert_eq!(
        (ev["users"].clone(), ev["threadId"].clone()),
        (json!(["bob"]), json!("th"))
    );
    let ev = alice.expect("typing:event").await;
    assert_eq!(ev["users"], json!([]));
    // Delays only make the expiry later, never earlier.
    assert!(started.elapsed() >= timeout, "expired too early");
    // Expiry is announced to everyone, bob included.
    assert_eq!(bob.expect("typing:event").await["users"], json!([]));
    alice.expect_silence().await;

    // A repeated typing:start moves the deadline, and the entry still
    // expires: a timeout after the second start, not after the first.
    bob.ok(json!({"type": "typing:start", "room": "r"})).await;
    assert_eq!(alice.expect("typing:event").await["users"], json!(["bob"]));
    tokio::time::sleep(timeout / 2).await;
    let refreshed = Instant::now();
    bob.ok(json!({"type": "typing:start", "room": "r"})).await;
    let ev = alice.expect("typing:event").await;
    assert_eq!(
        ev["users"],
        json!([]),
        "the entry expired before the second start (the machine stalled for half the timeout)"
    );
    assert!(
        refreshed.elapsed() >= timeout,
        "expired {:?} after the second start: the refresh was ignored",
        refreshed.elapsed()
    );
    bob.drain().await;
}

#[actix_rt::test]
async fn room_access_is_checked() {
    let server = Server::start("[rooms.max_users]\n\"dm:*\" = 2\n");
    let mut alice = server.connect("alice", &["team:1:*", "dm:*"]).await;
    let refused = [
        (
            json!({"type": "room:join", "room": "team:2:x"}),
            "FORBIDDEN",
        ),
        (
            json!({"type": "room:join", "room": "user:bob"}),
            "FORBIDDEN",
        ),
        (
            json!({"type": "history:get", "room": "team:2:x"}),
            "FORBIDDEN",
        ),
        (
            json!({"type": "presence:get", "room": "team:2:x"}),
            "FORBIDDEN",
        ),
        // Sending, typing or leaving outside a joined room.
        (
            json!({"type": "message:send", "room": "team:1:a", "content": "x"}),
            "NOT_IN_ROOM",
        ),
        (
            json!({"type": "typing:start", "room": "team:1:a"}),
            "NOT_IN_ROOM",
        ),
        (
            json!({"type": "room:leave", "room": "team:1:a"}),
            "NOT_IN_ROOM",
        ),
    ];
    for (command, code) in refused {
        assert_eq!(alice.err(command.clone()).await, code, "{command}");
    }
    // Public rooms from config need no claim.
    alice.join("lobby").await;
    alice.join("public:news").await;

    // Room capacity from [rooms.max_users]: a third user is refused.
    let mut bob = server.connect("bob", &["dm:*"]).await;
    let mut carol = server.connect("carol", &["dm:*"]).await;
    alice.join("dm:ab").await;
    bob.join("dm:ab").await;
    assert_eq!(
        carol
            .err(json!({"type": "room:join", "room": "dm:ab"}))
            .await,
        "ROOM_FULL"
    );
    // A second connection of a member is not a new user.
    let mut bob2 = server.connect("bob", &["dm:*"]).await;
    bob2.join("dm:ab").await;

    // An admin token may join anything.
    let mut root = server.connect_with(&server.admin_jwt(), &[]).await.unwrap();
    root.join("team:9:secret").await;
}

#[actix_rt::test]
async fn rooms_per_connection_are_limited() {
    let server = Server::start("[limits]\nmax_rooms_per_connection = 2\n");
    let mut alice = server.connect("alice", &["*"]).await;
    alice.join("a").await;
    alice.join("b").await;
    // Joining a room again is not another room.
    alice.join("b").await;
    assert_eq!(
        alice.err(json!({"type": "room:join", "room": "c"})).await,
        "FORBIDDEN"
    );
    alice.ok(json!({"type": "room:leave", "room": "a"})).await;
    alice.join("c").await;
}

#[actix_rt::test]
async fn history_recovery_and_dedupe() {
    let server = Server::start("[limits]\nrecovery_max = 5\n");
    let mut alice = server.connect("alice", &["r"]).await;
    alice.join("r").await;
    for i in 1..=10 {
        let reply = alice
            .ok(json!({"type": "message:send", "room": "r", "content": format!("m{i}")}))
            .await;
        assert_eq!(reply["seq"], i);
        alice.expect("message:new").await;
    }
    // The same clientMsgId from the same user: same message, no second delivery.
    let first = alice
        .ok(json!({"type": "message:send", "room": "r", "content": "once", "clientMsgId": "c-1"}))
        .await;
    alice.expect("message:new").await;
    let again = alice
        .ok(json!({"type": "message:send", "room": "r", "content": "once", "clientMsgId": "c-1"}))
        .await;
    assert_eq!(first, again);
    assert_eq!(first["seq"], 11);
    alice.expect_silence().await;

    let page = alice
        .ok(json!({"type": "history:get", "room": "r", "limit": 3}))
        .await["messages"]
        .clone();
    let seqs: Vec<_> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![9, 10, 11]);
    let page = alice
        .ok(json!({"type": "history:get", "room": "r", "before": 9, "limit": 3}))
        .await["messages"]
        .clone();
    let seqs: Vec<_> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![6, 7, 8]);
    assert_eq!(page[0]["content"], "m6");

    // Recovery: a reconnecting client gets what it missed.
    let mut bob = server.connect("bob", &["r"]).await;
    let joined = bob
        .ok(json!({"type": "room:join", "room": "r", "since": 8}))
        .await;
    assert_eq!(joined["seq"], 11);
    assert_eq!(joined["recovered"], true);
    let missed: Vec<_> = joined["missed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(missed, vec![9, 10, 11]);
    // More missed than recovery_max: the newest five, and recovered false.
    let mut carol = server.connect("carol", &["r"]).await;
    let joined = carol
        .ok(json!({"type": "room:join", "room": "r", "since": 2}))
        .await;
    assert_eq!(joined["recovered"], false);
    let missed: Vec<_> = joined["missed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(missed, vec![7, 8, 9, 10, 11]);
}

#[actix_rt::test]
async fn ping_and_personal_room() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &[]).await;
    let pong = alice.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["serverTime"].as_str().unwrap().ends_with('Z'));
    // The personal room is joined already and cannot be left.
    let joined = alice.join("user:alice").await;
    assert_eq!(joined["room"], "user:alice");
    assert_eq!(
        alice
            .err(json!({"type": "room:leave", "room": "user:alice"}))
            .await,
        "BAD_REQUEST"
    );
}

#[actix_rt::test]
async fn the_personal_room_carries_messages_and_typing_but_no_join_or_leave_events() {
    let server = Server::start("");
    let mut phone = server.connect("alice", &[]).await;
    // A second connection opening: no user:joined in user:alice.
    let mut laptop = server.connect("alice", &[]).await;
    phone.expect_silence().await;
    // Sending there needs no room:join, and reaches every connection of
    // the user, the sender's own included.
    let sent = phone
        .ok(json!({"type": "message:send", "room": "user:alice", "content": "note to self"}))
        .await;
    assert_eq!(sent["seq"], 1);
    for c in [&mut phone, &mut laptop] {
        let m = c.expect("message:new").await;
        assert_eq!(
            (&m["room"], &m["content"], &m["seq"]),
            (&json!("user:alice"), &json!("note to self"), &json!(1)),
            "{m}"
        );
    }
    // Typing goes to the user's other connections, not to the typer.
    laptop
        .ok(json!({"type": "typing:start", "room": "user:alice"}))
        .await;
    let ev = phone.expect("typing:event").await;
    assert_eq!(
        (&ev["room"], &ev["users"]),
        (&json!("user:alice"), &json!(["alice"]))
    );
    laptop.expect_silence().await;
    laptop
        .ok(json!({"type": "typing:stop", "room": "user:alice"}))
        .await;
    assert_eq!(phone.expect("typing:event").await["users"], json!([]));
    // An admin joining and leaving it: still no join or leave events, and
    // the admin's message reaches both connections.
    let mut root = server.connect_with(&server.admin_jwt(), &[]).await.unwrap();
    root.join("user:alice").await;
    root.ok(json!({"type": "message:send", "room": "user:alice", "content": "from ops"}))
        .await;
    for c in [&mut phone, &mut laptop, &mut root] {
        assert_eq!(c.expect("message:new").await["content"], "from ops");
    }
    root.ok(json!({"type": "room:leave", "room": "user:alice"}))
        .await;
    drop(root);
    // A connection of the user closing: no user:left.
    drop(laptop);
    server
        .wait_stats("the other connections to be gone", |s| {
            s["connections"] == 1
        })
        .await;
    phone.expect_silence().await;
    let history = phone
        .ok(json!({"type": "history:get", "room": "user:alice"}))
        .await;
    let contents: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(contents, vec![json!("note to self"), json!("from ops")]);
}

#[actix_rt::test]
async fn big_rooms_skip_join_and_leave_events() {
    let server =
        Server::start_with_env("", &[("REALTIME__ROOMS__JOIN_LEAVE_EVENTS_MAX_USERS", "2")]);
    let mut alice = server.connect("alice", &["big"]).await;
    let mut bob = server.connect("bob", &["big"]).await;
    alice.join("big").await;
    bob.join("big").await;
    assert_eq!(alice.expect("user:joined").await["userId"], "bob");
    // A third user makes the room bigger than the limit: no more events.
    let mut carol = server.connect("carol", &["big"]).await;
    let joined = carol.join("big").await;
    assert_eq!(
        joined["members"].as_array().unwrap().len(),
        3,
        "presence still lists everyone"
    );
    alice.expect_silence().await;
    drop(carol);
    alice.expect_silence().await;
    bob.expect_silence().await;
}

/// A join costs the same in a room of any size: the reply lists at most
/// `limits.join_members_max` users (the joiner always among them) and says
/// how many there are; `presence:get` pages through every member once.
#[actix_rt::test]
async fn join_replies_stay_bounded_and_presence_pages_through_everyone() {
    const USERS: usize = 300;
    const MAX: usize = 20;
    let server = Server::start_with_env(
        "[limits]\njoin_members_max = 20\n",
        &[("REALTIME__ROOMS__JOIN_LEAVE_EVENTS_MAX_USERS", "5")],
    );
    let mut clients = Vec::new();
    let mut largest_reply = 0;
    for i in 0..USERS {
        // Ids in reverse order, so late joiners sort first and early ones
        // are pushed out of the first page.
        let user = format!("u{:03}", USERS - i);
        let mut c = server.connect(&user, &["big"]).await;
        let joined = c.join("big").await;
        let members = joined["members"].as_array().unwrap();
        assert!(members.len() <= MAX, "{} members listed", members.len());
        assert_eq!(members.len(), (i + 1).min(MAX));
        assert_eq!(joined["memberCount"], i + 1);
        assert!(
            members.iter().any(|m| m["userId"] == user),
            "the joiner is listed: {joined}"
        );
        let ids: Vec<&str> = members
            .iter()
            .map(|m| m["userId"].as_str().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted: {ids:?}");
        largest_reply = largest_reply.max(joined.to_string().len());
        clients.push(c);
    }
    assert!(largest_reply < 4096, "reply of {largest_reply} bytes");

    let asker = &mut clients[0];
    asker.drain().await;
    let mut seen = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let mut command = json!({"type": "presence:get", "room": "big", "limit": 70});
        if !after.is_null() {
            command["after"] = after.clone();
        }
        let page = asker.ok(command).await;
        assert_eq!(page["memberCount"], USERS);
        let members = page["members"].as_array().unwrap();
        assert!(members.len() <= 70);
        seen.extend(
            members
                .iter()
                .map(|m| m["userId"].as_str().unwrap().to_string()),
        );
        after = page["next"].clone();
        if after.is_null() {
            break;
        }
    }
    let mut all: Vec<String> = (1..=USERS).map(|i| format!("u{i:03}")).collect();
    all.sort();
    assert_eq!(seen, all, "every member once, in order");
    let e = asker
        .request(json!({"type": "presence:get", "room": "big", "limit": 1001}))
        .await;
    assert_eq!(e["code"], "BAD_REQUEST", "{e}");
}
