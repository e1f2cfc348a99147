//! The message lifecycle (`docs/protocol.md` §14), black-box: replies and
//! kinds, edits and deletions with their events and tombstones, and the
//! recovery of changes across a restart and across two nodes. (Connection
//! lifecycle is `lifecycle.rs`.)

#[macro_use]
mod common;

use std::time::Duration;

use common::rooms::{add, create, forbidden, refused, until};
use common::{two_nodes, Backend, Client, Server, TestDb, ADMIN_KEY};
use serde_json::{json, Value};

on_both_backends!(
    replies_page_as_threads_and_kinds_are_kept,
    bad_input_gets_its_code_and_the_connection_keeps_working,
    the_author_edits_and_deletes_and_others_are_told,
    a_moderator_deletes_in_a_managed_room,
    a_client_that_was_away_gets_what_changed_also_after_a_restart,
    the_server_publishes_durable_messages,
    read_positions_never_go_back_and_reach_the_other_connections,
    a_database_of_the_previous_release_is_migrated_and_read,
);

async fn send(client: &mut Client, room: &str, content: &str, extra: Value) -> Value {
    let mut cmd = json!({"type": "message:send", "room": room, "content": content});
    for (k, v) in extra.as_object().unwrap() {
        cmd[k] = v.clone();
    }
    client.ok(cmd).await
}

fn contents(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect()
}

async fn replies_page_as_threads_and_kinds_are_kept(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &["chat:*"]).await;
    let mut bob = server.connect("bob", &["chat:*"]).await;
    alice.join("chat:a").await;
    bob.join("chat:a").await;

    let root = send(&mut alice, "chat:a", "root", json!({})).await;
    let root_id = root["messageId"].as_str().unwrap().to_string();
    let new = until(&mut bob, "message:new").await;
    assert_eq!(new["kind"], "text");
    assert_eq!(new["replyTo"], Value::Null);
    assert_eq!(new["editedAt"], Value::Null);
    assert_eq!(new["deleted"], false);

    for i in 1..=3 {
        send(
            &mut bob,
            "chat:a",
            &format!("r{i}"),
            json!({"replyTo": root_id}),
        )
        .await;
        send(&mut alice, "chat:a", &format!("other{i}"), json!({})).await;
    }
    let image = send(
        &mut alice,
        "chat:a",
        "cat.png",
        json!({"kind": "image", "replyTo": root_id}),
    )
    .await;
    loop {
        let new = until(&mut bob, "message:new").await;
        if new["messageId"] == image["messageId"] {
            assert_eq!(new["kind"], "image");
            assert_eq!(new["replyTo"], root_id.as_str());
            break;
        }
    }

    // The thread, paged backwards like history.
    let thread = bob
        .ok(json!({"type": "history:get", "room": "chat:a", "replyTo": root_id}))
        .await;
    assert_eq!(contents(&thread["messages"]), ["r1", "r2", "r3", "cat.png"]);
    for m in thread["messages"].as_array().unwrap() {
        assert_eq!(m["replyTo"], root_id.as_str());
    }
    let last_two = bob
        .ok(json!({"type": "history:get", "room": "chat:a", "replyTo": root_id, "limit": 2}))
        .await;
    assert_eq!(contents(&last_two["messages"]), ["r3", "cat.png"]);
    let before = last_two["messages"][0]["seq"].as_u64().unwrap();
    let older = bob
        .ok(json!({"type": "history:get", "room": "chat:a", "replyTo": root_id, "before": before}))
        .await;
    assert_eq!(contents(&older["messages"]), ["r1", "r2"]);
    let all = bob
        .ok(json!({"type": "history:get", "room": "chat:a"}))
        .await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 8);
    assert_eq!(all["messages"][7]["kind"], "image");
}

async fn bad_input_gets_its_code_and_the_connection_keeps_working(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "[limits]\nmax_message_chars = 100\n");
    let mut alice = server.connect("alice", &["chat:*"]).await;
    alice.join("chat:a").await;
    alice.join("chat:b").await;
    let elsewhere = send(&mut alice, "chat:b", "in b", json!({})).await;
    let mine = send(&mut alice, "chat:a", "in a", json!({})).await;
    let id = mine["messageId"].as_str().unwrap();

    let cases = [
        (
            json!({"type": "message:send", "room": "chat:a", "content": "x", "kind": "system"}),
            "FORBIDDEN",
        ),
        (
            json!({"type": "message:send", "room": "chat:a", "content": "x", "kind": "sticker"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "message:send", "room": "chat:a", "content": "x", "replyTo": "nope"}),
            "NOT_FOUND",
        ),
        // A message of another room is not one to reply to here.
        (
            json!({"type": "message:send", "room": "chat:a", "content": "x", "replyTo": elsewhere["messageId"]}),
            "NOT_FOUND",
        ),
        (
            json!({"type": "message:edit", "room": "chat:a", "messageId": id}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "message:edit", "room": "chat:a", "content": "x"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "message:edit", "room": "chat:a", "messageId": "nope", "content": "x"}),
            "NOT_FOUND",
        ),
        (
            json!({"type": "message:edit", "room": "chat:a", "messageId": id, "content": "x".repeat(101)}),
            "TOO_LARGE",
        ),
        (
            json!({"type": "message:edit", "room": "chat:a", "messageId": id, "content": "x", "metadata": [1]}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "message:delete", "room": "chat:a"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "message:delete", "room": "chat:a", "messageId": "nope"}),
            "NOT_FOUND",
        ),
        (
            json!({"type": "message:delete", "room": "chat:b", "messageId": id}),
            "NOT_FOUND",
        ),
        (
            json!({"type": "message:delete", "room": "chat:c", "messageId": id}),
            "NOT_IN_ROOM",
        ),
    ];
    for (cmd, code) in cases {
        let (got, message) = refused(&mut alice, cmd.clone()).await;
        assert_eq!(got, code, "{cmd}: {message}");
    }
    // Nothing refused was stored, and the connection still works.
    let history = alice
        .ok(json!({"type": "history:get", "room": "chat:a"}))
        .await;
    assert_eq!(contents(&history["messages"]), ["in a"]);
    let next = send(&mut alice, "chat:a", "still here", json!({"replyTo": id})).await;
    assert_eq!(next["seq"], 2);
}

async fn the_author_edits_and_deletes_and_others_are_told(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &["chat:*"]).await;
    let mut bob = server.connect("bob", &["chat:*"]).await;
    alice.join("chat:a").await;
    bob.join("chat:a").await;
    let sent = send(&mut alice, "chat:a", "helo", json!({"metadata": {"v": 1}})).await;
    let id = sent["messageId"].as_str().unwrap().to_string();
    until(&mut bob, "message:new").await;

    let edit =
        json!({"type": "message:edit", "room": "chat:a", "messageId": id, "content": "hacked"});
    forbidden(&mut bob, edit, "only the author may edit").await;
    let delete = json!({"type": "message:delete", "room": "chat:a", "messageId": id});
    forbidden(&mut bob, delete.clone(), "needs role moderator").await;

    let edited = alice
        .ok(json!({"type": "message:edit", "room": "chat:a", "messageId": id, "content": "hello", "metadata": {"v": 2}}))
        .await;
    assert_eq!(edited["messageId"], id.as_str());
    assert!(edited["editedAt"].is_string(), "{edited}");
    let updated = until(&mut bob, "message:updated").await;
    assert_eq!(
        (
            &updated["room"],
            &updated["messageId"],
            &updated["seq"],
            &updated["userId"]
        ),
        (&json!("chat:a"), &json!(id), &json!(1), &json!("alice"))
    );
    assert_eq!(updated["content"], "hello");
    assert_eq!(updated["metadata"], json!({"v": 2}));
    assert_eq!(updated["editedAt"], edited["editedAt"]);
    let history = bob
        .ok(json!({"type": "history:get", "room": "chat:a"}))
        .await;
    assert_eq!(history["messages"][0]["content"], "hello");
    assert_eq!(history["messages"][0]["editedAt"], edited["editedAt"]);

    assert_eq!(alice.ok(delete.clone()).await, json!({}));
    let deleted = until(&mut bob, "message:deleted").await;
    assert_eq!(
        deleted,
        json!({"type": "message:deleted", "room": "chat:a", "messageId": id, "seq": 1, "deletedBy": "alice"})
    );
    let history = bob
        .ok(json!({"type": "history:get", "room": "chat:a"}))
        .await;
    let tomb = &history["messages"][0];
    assert_eq!(
        (&tomb["deleted"], &tomb["content"], &tomb["metadata"]),
        (&json!(true), &json!(""), &Value::Null)
    );
    if backend == Backend::Postgres {
        // Removed from the database, not only hidden.
        let stored = db.query(&format!(
            "SELECT content, metadata IS NULL FROM messages WHERE message_id = '{id}'"
        ));
        assert_eq!(stored, "|t");
    }
    // A deleted message is gone for edits and deletions.
    assert_eq!(alice.err(delete).await, "NOT_FOUND");
    let again =
        json!({"type": "message:edit", "room": "chat:a", "messageId": id, "content": "back"});
    assert_eq!(alice.err(again).await, "NOT_FOUND");
}

async fn a_moderator_deletes_in_a_managed_room(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let r = "team:mods";
    let mut owner = server.connect("owner", &["team:*"]).await;
    create(&mut owner, r, "group", "private").await;
    add(&mut owner, r, "mod1", "moderator").await;
    add(&mut owner, r, "member1", "member").await;
    add(&mut owner, r, "member2", "member").await;
    let mut moder = server.connect("mod1", &[]).await;
    let mut m1 = server.connect("member1", &[]).await;
    let mut m2 = server.connect("member2", &[]).await;
    for c in [&mut moder, &mut m1, &mut m2] {
        c.join(r).await;
    }
    let a = send(&mut m1, r, "spam", json!({})).await;
    let b = send(&mut moder, r, "rule 1", json!({})).await;
    let delete = |id: &Value| json!({"type": "message:delete", "room": r, "messageId": id});
    forbidden(&mut m2, delete(&a["messageId"]), "needs role moderator").await;
    // A member may not remove a moderator's message either.
    forbidden(&mut m1, delete(&b["messageId"]), "needs role moderator").await;
    moder.ok(delete(&a["messageId"])).await;
    let told = until(&mut m2, "message:deleted").await;
    assert_eq!(told["deletedBy"], "mod1");
    assert_eq!(told["messageId"], a["messageId"]);
    // Moderators delete, they do not edit others' words.
    let edit =
        json!({"type": "message:edit", "room": r, "messageId": b["messageId"], "content": "x"});
    owner.join(r).await;
    forbidden(&mut owner, edit, "only the author").await;
}

fn stop(server: &mut Server) {
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(20)).success());
}

/// `changed` of a rejoin with `since`, by content.
async fn changed_since(client: &mut Client, room: &str, since: u64) -> Vec<(String, bool)> {
    let joined = client
        .ok(json!({"type": "room:join", "room": room, "since": since}))
        .await;
    let mut changed: Vec<(String, bool)> = joined["changed"]
        .as_array()
        .unwrap_or_else(|| panic!("no changed in {joined}"))
        .iter()
        .map(|m| {
            (
                m["content"].as_str().unwrap().to_string(),
                m["deleted"].as_bool().unwrap(),
            )
        })
        .collect();
    changed.sort();
    changed
}

async fn a_client_that_was_away_gets_what_changed_also_after_a_restart(backend: Backend) {
    let db = TestDb::new(backend);
    let mut server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &["chat:*"]).await;
    alice.join("chat:a").await;
    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(
            send(&mut alice, "chat:a", &format!("m{i}"), json!({})).await["messageId"].clone(),
        );
    }
    // Bob saw up to seq 3, then went away.
    let mut bob = server.connect("bob", &["chat:*"]).await;
    let joined = bob.join("chat:a").await;
    assert_eq!(joined["seq"], 3);
    assert!(joined.get("changed").is_none(), "{joined}");
    drop(bob);

    alice
        .ok(json!({"type": "message:edit", "room": "chat:a", "messageId": ids[0], "content": "m1 fixed"}))
        .await;
    alice
        .ok(json!({"type": "message:delete", "room": "chat:a", "messageId": ids[1]}))
        .await;
    send(&mut alice, "chat:a", "m4", json!({})).await;

    let expected = vec![("".to_string(), true), ("m1 fixed".to_string(), false)];
    let mut bob = server.connect("bob", &["chat:*"]).await;
    assert_eq!(changed_since(&mut bob, "chat:a", 3).await, expected);
    drop(bob);
    drop(alice);

    stop(&mut server);
    let server = Server::start_on(&db, "");
    let mut bob = server.connect("bob", &["chat:*"]).await;
    assert_eq!(changed_since(&mut bob, "chat:a", 3).await, expected);
    let joined = bob
        .ok(json!({"type": "room:join", "room": "chat:a", "since": 3}))
        .await;
    assert_eq!(contents(&joined["missed"]), ["m4"]);
    // Nothing changed after seq 4: a client that has it gets none.
    let mut carol = server.connect("carol", &["chat:*"]).await;
    assert_eq!(changed_since(&mut carol, "chat:a", 4).await, vec![]);

    // An edit with no new message after it: a client holding the latest
    // seq gets it too.
    let mut alice = server.connect("alice", &["chat:*"]).await;
    alice.join("chat:a").await;
    alice
        .ok(json!({"type": "message:edit", "room": "chat:a", "messageId": ids[2], "content": "m3 fixed"}))
        .await;
    let mut dave = server.connect("dave", &["chat:*"]).await;
    assert_eq!(
        changed_since(&mut dave, "chat:a", 4).await,
        vec![("m3 fixed".to_string(), false)]
    );
    // A `since` past the room's latest counts as the latest.
    let mut erin = server.connect("erin", &["chat:*"]).await;
    assert_eq!(
        changed_since(&mut erin, "chat:a", 99).await,
        vec![("m3 fixed".to_string(), false)]
    );
}

#[actix_rt::test]
async fn edits_and_deletions_on_one_node_reach_the_other() {
    let db = TestDb::new(Backend::Postgres);
    let (_, a, b) = two_nodes(&db).await;
    let mut alice = a.connect("alice", &["chat:*"]).await;
    let mut bob = b.connect("bob", &["chat:*"]).await;
    alice.join("chat:n").await;
    bob.join("chat:n").await;
    let sent = send(&mut alice, "chat:n", "one", json!({})).await;
    let new = until(&mut bob, "message:new").await;
    assert_eq!(new["messageId"], sent["messageId"]);
    alice
        .ok(json!({"type": "message:edit", "room": "chat:n", "messageId": sent["messageId"], "content": "uno"}))
        .await;
    let updated = until(&mut bob, "message:updated").await;
    assert_eq!(updated["content"], "uno");
    alice
        .ok(json!({"type": "message:delete", "room": "chat:n", "messageId": sent["messageId"]}))
        .await;
    let deleted = until(&mut bob, "message:deleted").await;
    assert_eq!(deleted["messageId"], sent["messageId"]);
    assert_eq!(deleted["deletedBy"], "alice");
    // Node B's history reads the tombstone.
    let history = bob
        .ok(json!({"type": "history:get", "room": "chat:n"}))
        .await;
    assert_eq!(history["messages"][0]["deleted"], true);
}

async fn the_server_publishes_durable_messages(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "[limits]\nmax_message_chars = 100\n");
    let mut alice = server.connect("alice", &["orders:*"]).await;
    alice.join("orders:42").await;
    send(&mut alice, "orders:42", "where is my order?", json!({})).await;
    let path = "/admin/rooms/orders:42/messages";

    let (status, published) = server
        .post(
            path,
            Some(ADMIN_KEY),
            json!({"content": "shipped", "metadata": {"carrier": "x"}}),
        )
        .await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["seq"], 2);
    assert!(published["messageId"].is_string() && published["timestamp"].is_string());
    // Her own message comes back first (senders get theirs too).
    assert_eq!(until(&mut alice, "message:new").await["seq"], 1);
    let new = until(&mut alice, "message:new").await;
    assert_eq!(
        (
            &new["messageId"],
            &new["seq"],
            &new["userId"],
            &new["kind"],
            &new["content"]
        ),
        (
            &published["messageId"],
            &json!(2),
            &json!("system"),
            &json!("system"),
            &json!("shipped")
        )
    );
    assert_eq!(new["metadata"], json!({"carrier": "x"}));

    let (status, as_bot) = server
        .post(
            path,
            Some(ADMIN_KEY),
            json!({"content": "rate us", "kind": "text", "userId": "shop-bot"}),
        )
        .await;
    assert_eq!(status, 201, "{as_bot}");
    assert_eq!(as_bot["seq"], 3);
    // The room's seq goes on from there for everyone.
    assert_eq!(
        send(&mut alice, "orders:42", "thanks", json!({})).await["seq"],
        4
    );
    let history = alice
        .ok(json!({"type": "history:get", "room": "orders:42"}))
        .await;
    let by: Vec<(&str, &str)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["userId"].as_str().unwrap(), m["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by,
        [
            ("alice", "text"),
            ("system", "system"),
            ("shop-bot", "text"),
            ("alice", "text")
        ]
    );
    // Recovery includes it, like any message.
    let mut again = server.connect("alice", &["orders:*"]).await;
    let joined = again
        .ok(json!({"type": "room:join", "room": "orders:42", "since": 1}))
        .await;
    assert_eq!(
        contents(&joined["missed"]),
        ["shipped", "rate us", "thanks"]
    );

    let bad = [
        (json!({}), 400),
        (json!({"content": "x", "kind": "sticker"}), 400),
        (json!({"content": "x", "metadata": [1]}), 400),
        (json!({"content": "x", "userId": ""}), 400),
        (json!({"content": "x", "extra": 1}), 400),
        (json!({"content": "x".repeat(101)}), 413),
    ];
    for (body, code) in bad {
        let (status, answer) = server.post(path, Some(ADMIN_KEY), body.clone()).await;
        assert_eq!(status, code, "{body}: {answer}");
        assert!(answer["code"].is_string(), "{answer}");
    }
    let (status, _) = server
        .post(
            "/admin/rooms/bad%20room/messages",
            Some(ADMIN_KEY),
            json!({"content": "x"}),
        )
        .await;
    assert_ne!(status, 201);
    let (status, _) = server.post(path, None, json!({"content": "x"})).await;
    assert_eq!(status, 401);
    let history = alice
        .ok(json!({"type": "history:get", "room": "orders:42"}))
        .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 4);
}

async fn read_positions_never_go_back_and_reach_the_other_connections(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let r = "team:reads";
    let mut owner = server.connect("owner", &["team:*"]).await;
    create(&mut owner, r, "group", "private").await;
    add(&mut owner, r, "alice", "member").await;
    owner.join(r).await;
    for i in 1..=5 {
        send(&mut owner, r, &format!("m{i}"), json!({})).await;
    }
    let mut phone = server.connect("alice", &[]).await;
    let mut laptop = server.connect("alice", &[]).await;
    let read = |seq: u64| json!({"type": "room:read", "room": r, "seq": seq});

    // Reading needs access to the room, not a join.
    assert_eq!(phone.ok(read(3)).await, json!({"lastReadSeq": 3}));
    let synced = until(&mut laptop, "room:read").await;
    assert_eq!(
        synced,
        json!({"type": "room:read", "room": r, "lastReadSeq": 3})
    );
    // Never back; never past the room's last seq.
    assert_eq!(laptop.ok(read(2)).await, json!({"lastReadSeq": 3}));
    let listed = phone.ok(json!({"type": "room:list"})).await;
    let entry = &listed["rooms"][0];
    assert_eq!(
        (
            &entry["room"],
            &entry["lastSeq"],
            &entry["lastReadSeq"],
            &entry["unread"]
        ),
        (&json!(r), &json!(5), &json!(3), &json!(2))
    );
    let members = owner.ok(json!({"type": "member:list", "room": r})).await;
    let alice = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(alice["lastReadSeq"], 3);
    assert_eq!(laptop.ok(read(99)).await, json!({"lastReadSeq": 5}));
    let listed = laptop.ok(json!({"type": "room:list"})).await;
    assert_eq!(listed["rooms"][0]["unread"], 0);
    // The other user's position is their own.
    let listed = owner.ok(json!({"type": "room:list"})).await;
    assert_eq!(listed["rooms"][0]["lastReadSeq"], 0);

    // Ad hoc rooms keep positions too.
    let mut carol = server.connect("carol", &["chat:*"]).await;
    carol.join("chat:x").await;
    send(&mut carol, "chat:x", "a", json!({})).await;
    send(&mut carol, "chat:x", "b", json!({})).await;
    let read_x = |seq: u64| json!({"type": "room:read", "room": "chat:x", "seq": seq});
    assert_eq!(carol.ok(read_x(2)).await, json!({"lastReadSeq": 2}));
    assert_eq!(carol.ok(read_x(1)).await, json!({"lastReadSeq": 2}));

    // Refusals, and the connection goes on.
    let (code, _) = refused(&mut carol, json!({"type": "room:read", "room": "chat:x"})).await;
    assert_eq!(code, "BAD_REQUEST");
    let (code, _) = refused(
        &mut carol,
        json!({"type": "room:read", "room": "chat:x", "seq": -1}),
    )
    .await;
    assert_eq!(code, "BAD_REQUEST");
    let (code, _) = refused(&mut carol, read(1)).await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(carol.ok(read_x(2)).await, json!({"lastReadSeq": 2}));
}

#[actix_rt::test]
async fn read_positions_reach_the_users_connections_on_the_other_node() {
    let db = TestDb::new(Backend::Postgres);
    let (_, a, b) = two_nodes(&db).await;
    let mut on_a = a.connect("alice", &["chat:*"]).await;
    let mut on_b = b.connect("alice", &["chat:*"]).await;
    on_a.join("chat:r").await;
    for i in 1..=3 {
        send(&mut on_a, "chat:r", &format!("m{i}"), json!({})).await;
    }
    on_a.ok(json!({"type": "room:read", "room": "chat:r", "seq": 2}))
        .await;
    let synced = until(&mut on_b, "room:read").await;
    assert_eq!(synced["lastReadSeq"], 2);
    assert_eq!(synced["room"], "chat:r");
    // Stored once for both nodes: node B sees the position.
    let again = on_b
        .ok(json!({"type": "room:read", "room": "chat:r", "seq": 1}))
        .await;
    assert_eq!(again["lastReadSeq"], 2);
}

/// Builds the schema of the release before this one (its migrations, run
/// as SQL, and diesel's record of them) holding two messages and a read
/// notification.
fn previous_release(db: &TestDb) {
    let dir = match db.backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let mut sql = String::from(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);\n",
    );
    for (name, version) in [
        ("2026-11-21-000001_init", "20261121000001"),
        ("2026-11-30-000001_revocations", "20261130000001"),
        ("2026-11-30-000002_managed_rooms", "20261130000002"),
    ] {
        let up = std::fs::read_to_string(format!("{dir}/{name}/up.sql")).unwrap();
        sql.push_str(&up);
        sql.push_str(&format!(
            "\nINSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');\n"
        ));
    }
    sql.push_str(
        "INSERT INTO rooms (name, last_seq, created_at) VALUES ('chat:old', 2, 0);\n\
         INSERT INTO messages (room, seq, message_id, user_id, content, metadata, created_at) VALUES \
         ('chat:old', 1, 'old-1', 'alice', 'from before', '{\"v\":1}', 1000), \
         ('chat:old', 2, 'old-2', 'alice', 'second', NULL, 2000);\n\
         INSERT INTO notifications (notification_id, user_id, kind, title, body, data, created_at, read_at) VALUES \
         ('old-n', 'alice', 'warning', 'Old news', 'b', '{\"x\":1}', 5000, 6000);\n",
    );
    match db.backend {
        Backend::Postgres => {
            db.query(&sql);
        }
        Backend::Sqlite => {
            use diesel::connection::SimpleConnection;
            db.sqlite().batch_execute(&sql).unwrap();
        }
    }
}

async fn a_database_of_the_previous_release_is_migrated_and_read(backend: Backend) {
    let db = TestDb::new(backend);
    previous_release(&db);
    let server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &["chat:*"]).await;
    assert_eq!(alice.join("chat:old").await["seq"], 2);
    let history = alice
        .ok(json!({"type": "history:get", "room": "chat:old"}))
        .await;
    let first = &history["messages"][0];
    assert_eq!(
        (
            &first["content"],
            &first["kind"],
            &first["replyTo"],
            &first["editedAt"],
            &first["deleted"]
        ),
        (
            &json!("from before"),
            &json!("text"),
            &Value::Null,
            &Value::Null,
            &json!(false)
        )
    );
    assert_eq!(first["metadata"], json!({"v": 1}));
    // Old messages take part in the lifecycle like new ones.
    let reply = send(&mut alice, "chat:old", "re", json!({"replyTo": "old-1"})).await;
    assert_eq!(reply["seq"], 3);
    alice
        .ok(json!({"type": "message:edit", "room": "chat:old", "messageId": "old-2", "content": "2nd"}))
        .await;
    let mut again = server.connect("alice", &["chat:*"]).await;
    let joined = again
        .ok(json!({"type": "room:join", "room": "chat:old", "since": 2}))
        .await;
    assert_eq!(contents(&joined["changed"]), ["2nd"]);
    assert_eq!(contents(&joined["missed"]), ["re"]);

    // The old notification is listed with the new fields' defaults, and
    // announcements (a table added since) work.
    let listed = again.ok(json!({"type": "notification:list"})).await;
    let old = &listed["notifications"][0];
    assert_eq!(
        (
            &old["notificationId"],
            &old["kind"],
            &old["priority"],
            &old["data"]
        ),
        (
            &json!("old-n"),
            &json!("warning"),
            &json!("medium"),
            &json!({"x": 1})
        )
    );
    assert_eq!(old["readAt"], "1970-01-01T00:00:06.000Z");
    assert_eq!(listed["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(
        server.admin_get("/admin/announcements").await,
        json!({"announcements": []})
    );
    let (status, made) = server
        .post(
            "/admin/announcements",
            Some(ADMIN_KEY),
            json!({"title": "Upgraded", "message": "welcome back", "type": "feature"}),
        )
        .await;
    assert_eq!((status, &made["delivered"]), (201, &json!(2)), "{made}");
}
