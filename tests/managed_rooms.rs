//! Managed rooms (`docs/protocol.md` §13), black-box: the real server, real
//! WebSocket clients, a real database (both backends), and two nodes on one
//! Redis and one PostgreSQL for what crosses nodes. The admin API, paging,
//! `room:list` and send rates are in `managed_rooms_api.rs`.

#[macro_use]
mod common;

use common::rooms::{add, create, fence, forbidden, no_message_before, refused, send, until};
use common::{user_ids, Backend, Server, TestDb};
use serde_json::json;

on_both_backends!(
    every_row_of_the_role_table_is_allowed_and_refused,
    a_private_room_is_for_members_even_when_patterns_match,
    a_public_room_makes_a_member_of_whoever_joins,
    mute_stops_sending_until_unmuted,
    removal_stops_delivery_at_once,
    a_dm_room_is_the_same_for_both_users_and_closed_to_a_third,
    deleting_a_room_tells_and_removes_its_members,
    bad_input_gets_its_code_and_the_connection_keeps_working,
);

async fn every_row_of_the_role_table_is_allowed_and_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let r = "team:roles";
    let mut owner = server.connect("owner", &["team:*"]).await;
    let room = create(&mut owner, r, "group", "private").await;
    assert_eq!(
        (
            room["room"].as_str(),
            room["type"].as_str(),
            room["createdBy"].as_str()
        ),
        (Some(r), Some("group"), Some("owner"))
    );
    assert_eq!(room["memberCount"], 1);
    let mut admin = server.connect("admin1", &[]).await;
    let mut moder = server.connect("mod1", &[]).await;
    let mut member = server.connect("member1", &[]).await;
    let mut other = server.connect("member2", &[]).await;

    // member:add: admin (an owner for owners)
    add(&mut owner, r, "admin1", "admin").await;
    add(&mut admin, r, "mod1", "moderator").await;
    add(&mut admin, r, "member1", "member").await;
    forbidden(
        &mut member,
        json!({"type": "member:add", "room": r, "userId": "member2"}),
        "needs role admin",
    )
    .await;
    forbidden(
        &mut moder,
        json!({"type": "member:add", "room": r, "userId": "member2"}),
        "needs role admin",
    )
    .await;
    forbidden(
        &mut admin,
        json!({"type": "member:add", "room": r, "userId": "member2", "role": "owner"}),
        "making an owner needs role owner",
    )
    .await;
    let added = add(&mut admin, r, "member2", "member").await;
    assert_eq!(added["role"], "member");
    assert_eq!(added["muted"], false);
    assert_eq!(added["lastReadSeq"], 0);

    for c in [&mut owner, &mut admin, &mut moder, &mut member, &mut other] {
        c.join(r).await;
    }

    // message:send: every member
    for c in [&mut owner, &mut admin, &mut moder, &mut member, &mut other] {
        let reply = send(c, r, "hi").await;
        assert_eq!(reply["type"], "reply", "{reply}");
    }

    // member:update role: admin, on lower roles; making an owner: owner
    forbidden(
        &mut moder,
        json!({"type": "member:update", "room": r, "userId": "member1", "role": "moderator"}),
        "changing roles needs role admin",
    )
    .await;
    forbidden(
        &mut admin,
        json!({"type": "member:update", "room": r, "userId": "member1", "role": "owner"}),
        "making an owner needs role owner",
    )
    .await;
    let changed = admin
        .ok(json!({"type": "member:update", "room": r, "userId": "member1", "role": "moderator"}))
        .await;
    assert_eq!(changed["role"], "moderator");
    let back = owner
        .ok(json!({"type": "member:update", "room": r, "userId": "member1", "role": "member"}))
        .await;
    assert_eq!(back["role"], "member");
    // not on an equal role, and only an owner makes owners
    forbidden(
        &mut admin,
        json!({"type": "member:update", "room": r, "userId": "owner", "role": "member"}),
        "below yours",
    )
    .await;
    let co = owner
        .ok(json!({"type": "member:update", "room": r, "userId": "mod1", "role": "owner"}))
        .await;
    assert_eq!(co["role"], "owner");
    owner
        .ok(json!({"type": "member:update", "room": r, "userId": "mod1", "role": "moderator"}))
        .await;

    // changing nothing needs no right, but membership
    let same = member
        .ok(json!({"type": "member:update", "room": r, "userId": "member2", "muted": false}))
        .await;
    assert_eq!(same["muted"], false);
    let mut stranger = server.connect("stranger", &[]).await;
    forbidden(
        &mut stranger,
        json!({"type": "member:update", "room": r, "userId": "member2", "muted": false}),
        "not a member",
    )
    .await;

    // mute: moderator on lower roles
    forbidden(
        &mut member,
        json!({"type": "member:update", "room": r, "userId": "member2", "muted": true}),
        "needs role moderator",
    )
    .await;
    forbidden(
        &mut moder,
        json!({"type": "member:update", "room": r, "userId": "admin1", "muted": true}),
        "lower role",
    )
    .await;

    // member:remove: moderator on lower roles; anyone on themselves
    forbidden(
        &mut member,
        json!({"type": "member:remove", "room": r, "userId": "member2"}),
        "needs role moderator",
    )
    .await;
    forbidden(
        &mut moder,
        json!({"type": "member:remove", "room": r, "userId": "admin1"}),
        "lower role",
    )
    .await;
    moder
        .ok(json!({"type": "member:remove", "room": r, "userId": "member2"}))
        .await;
    member
        .ok(json!({"type": "member:remove", "room": r, "userId": "member1"}))
        .await;

    // room:update: admin
    forbidden(
        &mut moder,
        json!({"type": "room:update", "room": r, "title": "no"}),
        "needs role admin",
    )
    .await;
    let updated = admin
        .ok(json!({"type": "room:update", "room": r, "title": "Roles", "maxUsers": 10}))
        .await;
    assert_eq!(
        (updated["title"].as_str(), updated["maxUsers"].as_u64()),
        (Some("Roles"), Some(10))
    );
    let event = until(&mut owner, "room:updated").await;
    assert_eq!(event["room"], r);
    assert_eq!(event["data"]["title"], "Roles");
    assert_eq!(event["data"]["type"], "group");

    // room:delete: owner
    forbidden(
        &mut admin,
        json!({"type": "room:delete", "room": r}),
        "needs role owner",
    )
    .await;
    owner.ok(json!({"type": "room:delete", "room": r})).await;

    // broadcast rooms: admins send, members do not
    let b = "team:news";
    create(&mut owner, b, "broadcast", "public").await;
    add(&mut owner, b, "admin1", "admin").await;
    add(&mut owner, b, "member1", "member").await;
    admin.join(b).await;
    member.join(b).await;
    forbidden(
        &mut member,
        json!({"type": "message:send", "room": b, "content": "me too"}),
        "only admins may send in a broadcast room",
    )
    .await;
    assert_eq!(send(&mut admin, b, "news").await["type"], "reply");
}

async fn a_private_room_is_for_members_even_when_patterns_match(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let r = "team:secret";
    let mut owner = server.connect("owner", &["team:*"]).await;
    create(&mut owner, r, "group", "private").await;
    owner.join(r).await;
    send(&mut owner, r, "s1").await;

    let mut outsider = server.connect("eve", &["team:*"]).await;
    forbidden(
        &mut outsider,
        json!({"type": "room:join", "room": r}),
        "private",
    )
    .await;
    forbidden(
        &mut outsider,
        json!({"type": "history:get", "room": r}),
        "private",
    )
    .await;
    forbidden(
        &mut outsider,
        json!({"type": "presence:get", "room": r}),
        "private",
    )
    .await;
    forbidden(
        &mut outsider,
        json!({"type": "member:list", "room": r}),
        "members only",
    )
    .await;
    // the connection keeps working
    outsider.join("team:open").await;

    // a member with no matching pattern at all gets in
    add(&mut owner, r, "bob", "member").await;
    let mut bob = server.connect("bob", &[]).await;
    let joined = bob.join(r).await;
    assert_eq!(joined["seq"], 1);

    // and an admin token, without being a member
    let token = server.admin_jwt();
    let mut root = server.connect_with(&token, &[]).await.expect("connect");
    root.join(r).await;
    assert_eq!(send(&mut root, r, "from root").await["type"], "reply");
}

async fn a_public_room_makes_a_member_of_whoever_joins(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let r = "team:town";
    let mut owner = server.connect("owner", &["team:*"]).await;
    owner
        .ok(json!({"type": "room:create", "room": r, "roomType": "channel", "visibility": "public", "maxUsers": 2}))
        .await;
    owner.join(r).await;
    // no pattern needed for a public managed room
    let mut visitor = server.connect("visitor", &[]).await;
    visitor.join(r).await;
    let event = until(&mut owner, "member:added").await;
    assert_eq!(
        (event["room"].as_str(), event["userId"].as_str()),
        (Some(r), Some("visitor"))
    );
    assert_eq!(event["role"], "member");
    let list = owner.ok(json!({"type": "member:list", "room": r})).await;
    assert_eq!(user_ids(&list["members"]), ["owner", "visitor"]);
    // maxUsers: 2 stored members
    let mut third = server.connect("third", &[]).await;
    let (code, _) = refused(&mut third, json!({"type": "room:join", "room": r})).await;
    assert_eq!(code, "ROOM_FULL");
    let (code, _) = refused(
        &mut owner,
        json!({"type": "member:add", "room": r, "userId": "third"}),
    )
    .await;
    assert_eq!(code, "ROOM_FULL");
    let (code, _) = refused(
        &mut owner,
        json!({"type": "member:add", "room": r, "userId": "visitor"}),
    )
    .await;
    assert_eq!(code, "CONFLICT");
}

async fn mute_stops_sending_until_unmuted(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let r = "team:quiet";
    let mut owner = server.connect("owner", &["team:*"]).await;
    create(&mut owner, r, "channel", "private").await;
    add(&mut owner, r, "mod", "moderator").await;
    add(&mut owner, r, "loud", "member").await;
    let mut moder = server.connect("mod", &[]).await;
    let mut loud = server.connect("loud", &[]).await;
    loud.join(r).await;
    assert_eq!(send(&mut loud, r, "1").await["type"], "reply");

    let muted = moder
        .ok(json!({"type": "member:update", "room": r, "userId": "loud", "muted": true}))
        .await;
    assert_eq!(muted["muted"], true);
    // to the affected user (personal room and the room, once)
    let event = until(&mut loud, "member:updated").await;
    assert_eq!(
        (event["userId"].as_str(), event["muted"].as_bool()),
        (Some("loud"), Some(true))
    );
    forbidden(
        &mut loud,
        json!({"type": "message:send", "room": r, "content": "2"}),
        "muted",
    )
    .await;
    // no unmuting yourself
    forbidden(
        &mut loud,
        json!({"type": "member:update", "room": r, "userId": "loud", "muted": false}),
        "moderator",
    )
    .await;
    moder
        .ok(json!({"type": "member:update", "room": r, "userId": "loud", "muted": false}))
        .await;
    assert_eq!(send(&mut loud, r, "3").await["type"], "reply");
}

async fn removal_stops_delivery_at_once(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let r = "team:kick";
    let mut owner = server.connect("owner", &["team:*"]).await;
    create(&mut owner, r, "group", "private").await;
    add(&mut owner, r, "bob", "member").await;
    owner.join(r).await;
    let mut bob = server.connect("bob", &["team:*"]).await;
    let mut bob2 = server.connect("bob", &["team:*"]).await;
    bob.join(r).await;
    bob2.join(r).await;
    send(&mut owner, r, "before").await;
    until(&mut bob, "message:new").await;
    until(&mut bob2, "message:new").await;

    owner
        .ok(json!({"type": "member:remove", "room": r, "userId": "bob"}))
        .await;
    send(&mut owner, r, "after").await;
    fence(&server, "bob").await;
    for b in [&mut bob, &mut bob2] {
        let removed = no_message_before(b, "member:removed").await;
        assert_eq!(
            (
                removed["room"].as_str(),
                removed["userId"].as_str(),
                removed["by"].as_str()
            ),
            (Some(r), Some("bob"), Some("owner"))
        );
        no_message_before(b, "notification").await;
        let (code, _) = refused(
            b,
            json!({"type": "message:send", "room": r, "content": "x"}),
        )
        .await;
        assert_eq!(code, "NOT_IN_ROOM");
        // and, no longer a member, not back in by patterns
        forbidden(b, json!({"type": "room:join", "room": r}), "private").await;
    }
    let (code, _) = refused(
        &mut owner,
        json!({"type": "member:remove", "room": r, "userId": "bob"}),
    )
    .await;
    assert_eq!(code, "NOT_FOUND");
}

async fn a_dm_room_is_the_same_for_both_users_and_closed_to_a_third(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &[]).await;
    let mut bob = server.connect("bob", &[]).await;
    let mut carol = server.connect("carol", &["*"]).await;
    let room = alice.ok(json!({"type": "dm:open", "userId": "bob"})).await;
    assert_eq!(
        (room["type"].as_str(), room["visibility"].as_str()),
        (Some("dm"), Some("private"))
    );
    assert_eq!(room["memberCount"], 2);
    let name = room["room"].as_str().unwrap().to_string();
    let again = bob.ok(json!({"type": "dm:open", "userId": "alice"})).await;
    assert_eq!(again["room"], name.as_str());
    alice.join(&name).await;
    bob.join(&name).await;
    send(&mut alice, &name, "hi bob").await;
    let got = until(&mut bob, "message:new").await;
    assert_eq!(got["content"], "hi bob");

    forbidden(
        &mut carol,
        json!({"type": "room:join", "room": &name}),
        "private",
    )
    .await;
    forbidden(
        &mut alice,
        json!({"type": "member:add", "room": &name, "userId": "carol"}),
        "exactly its two users",
    )
    .await;
    let (code, _) = refused(&mut alice, json!({"type": "dm:open", "userId": "alice"})).await;
    assert_eq!(code, "BAD_REQUEST");
    let (code, _) = refused(
        &mut carol,
        json!({"type": "room:create", "room": "dm:mine", "roomType": "group", "visibility": "public"}),
    )
    .await;
    assert_eq!(code, "FORBIDDEN");
}

async fn deleting_a_room_tells_and_removes_its_members(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let r = "team:gone";
    let mut owner = server.connect("owner", &["team:*"]).await;
    create(&mut owner, r, "group", "private").await;
    add(&mut owner, r, "bob", "member").await;
    owner.join(r).await;
    let mut bob = server.connect("bob", &[]).await;
    bob.join(r).await;
    owner.ok(json!({"type": "room:delete", "room": r})).await;
    let deleted = no_message_before(&mut bob, "room:deleted").await;
    assert_eq!(deleted["room"], r);
    let (code, _) = refused(
        &mut bob,
        json!({"type": "message:send", "room": r, "content": "x"}),
    )
    .await;
    assert_eq!(code, "NOT_IN_ROOM");
    let (code, _) = refused(
        &mut owner,
        json!({"type": "message:send", "room": r, "content": "x"}),
    )
    .await;
    assert_eq!(code, "NOT_IN_ROOM");
    let (code, _) = refused(&mut owner, json!({"type": "room:delete", "room": r})).await;
    assert_eq!(code, "NOT_FOUND");
    let listed = bob.ok(json!({"type": "room:list"})).await;
    assert_eq!(listed["rooms"], json!([]));
    // the name is free again: an ad hoc room, by patterns
    forbidden(
        &mut bob,
        json!({"type": "room:join", "room": r}),
        "not allowed",
    )
    .await;
    owner.join(r).await;
}

async fn bad_input_gets_its_code_and_the_connection_keeps_working(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut c = server.connect("owner", &["team:*"]).await;
    for (command, code) in [
        (
            json!({"type": "room:create", "room": "team:x", "visibility": "public"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "room:create", "room": "team:x", "roomType": "party", "visibility": "public"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "room:create", "room": "team:x", "roomType": "group", "visibility": "public", "maxUsers": 0}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "room:create", "room": "team:x", "roomType": "group", "visibility": "public", "metadata": [1]}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "room:create", "room": "team:x", "roomType": "dm", "visibility": "private"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "room:create", "room": "elsewhere", "roomType": "group", "visibility": "public"}),
            "FORBIDDEN",
        ),
        (
            json!({"type": "room:update", "room": "team:x"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "room:update", "room": "team:none", "title": "t"}),
            "NOT_FOUND",
        ),
        (
            json!({"type": "member:add", "room": "team:none", "userId": "b"}),
            "NOT_FOUND",
        ),
        (
            json!({"type": "member:add", "room": "team:none"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "member:update", "room": "team:none", "userId": "b"}),
            "BAD_REQUEST",
        ),
        (json!({"type": "dm:open"}), "BAD_REQUEST"),
    ] {
        let (got, message) = refused(&mut c, command.clone()).await;
        assert_eq!(got, code, "{command}: {message}");
    }
    create(&mut c, "team:x", "group", "public").await;
    let (code, _) = refused(
        &mut c,
        json!({"type": "room:create", "room": "team:x", "roomType": "group", "visibility": "public"}),
    )
    .await;
    assert_eq!(code, "CONFLICT");
    c.join("team:x").await;
    assert_eq!(send(&mut c, "team:x", "still here").await["type"], "reply");
}

// ---------------------------------------------------------------------------
// Two nodes on one Redis and one PostgreSQL

async fn two_nodes() -> (TestDb, Server, Server) {
    let db = TestDb::new(Backend::Postgres);
    let (_, a, b) = common::two_nodes(&db).await;
    (db, a, b)
}

#[actix_rt::test]
async fn removal_stops_delivery_at_once_on_both_nodes() {
    let (_db, a, b) = two_nodes().await;
    let r = "team:nodes";
    let mut owner = a.connect("owner", &["team:*"]).await;
    create(&mut owner, r, "group", "private").await;
    add(&mut owner, r, "bob", "member").await;
    owner.join(r).await;
    let mut bob_a = a.connect("bob", &[]).await;
    let mut bob_b = b.connect("bob", &[]).await;
    bob_a.join(r).await;
    bob_b.join(r).await;
    send(&mut owner, r, "before").await;
    until(&mut bob_a, "message:new").await;
    until(&mut bob_b, "message:new").await;

    owner
        .ok(json!({"type": "member:remove", "room": r, "userId": "bob"}))
        .await;
    send(&mut owner, r, "after").await;
    // a fence through node a to every node: bob's personal room on each
    fence(&a, "bob").await;
    for bob in [&mut bob_a, &mut bob_b] {
        let removed = no_message_before(bob, "member:removed").await;
        assert_eq!(removed["userId"], "bob");
        no_message_before(bob, "notification").await;
        let (code, _) = refused(
            bob,
            json!({"type": "message:send", "room": r, "content": "x"}),
        )
        .await;
        assert_eq!(code, "NOT_IN_ROOM");
    }
    // node b's cache knows bob is gone: no way back in there either
    forbidden(
        &mut bob_b,
        json!({"type": "room:join", "room": r}),
        "private",
    )
    .await;
}

#[actix_rt::test]
async fn max_users_is_one_limit_across_two_nodes() {
    let (_db, a, b) = two_nodes().await;
    let r = "team:small";
    let mut owner = a.connect("owner", &["team:*"]).await;
    owner
        .ok(json!({"type": "room:create", "room": r, "roomType": "channel", "visibility": "public", "maxUsers": 3}))
        .await;
    let mut x = a.connect("x", &[]).await;
    x.join(r).await;
    let mut y = b.connect("y", &[]).await;
    y.join(r).await;
    let mut z = b.connect("z", &[]).await;
    let (code, _) = refused(&mut z, json!({"type": "room:join", "room": r})).await;
    assert_eq!(code, "ROOM_FULL");
    let mut w = a.connect("w", &[]).await;
    let (code, _) = refused(&mut w, json!({"type": "room:join", "room": r})).await;
    assert_eq!(code, "ROOM_FULL");
    // one leaves for good on node b; then there is room on node a
    y.ok(json!({"type": "member:remove", "room": r, "userId": "y"}))
        .await;
    w.join(r).await;
}
