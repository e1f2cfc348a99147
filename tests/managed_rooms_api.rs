//! Managed rooms (`docs/protocol.md` §13), black-box on both backends: the
//! admin API's status codes, member paging, `room:list`, per-room send rates.

#[macro_use]
mod common;

use common::rooms::{burst, create, no_message_before, refused, send, until};
use common::{Backend, Server, TestDb};
use serde_json::{json, Value};

on_both_backends!(
    the_admin_api_answers_its_status_codes,
    members_are_listed_in_pages_sorted_by_user_id,
    room_list_counts_unread_messages,
    per_room_send_rates_come_from_the_room_or_the_config,
);

async fn the_admin_api_answers_its_status_codes(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let body = json!({
        "room": "ops:1", "type": "channel", "visibility": "private", "title": "Ops",
        "members": [{"userId": "ann", "role": "owner"}, {"userId": "ben"}]
    });
    let (status, room) = server
        .admin_call("POST", "/admin/rooms", Some(body.clone()))
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(
        (room["title"].as_str(), room["memberCount"].as_u64()),
        (Some("Ops"), Some(2))
    );
    assert_eq!(room["createdBy"], "admin");
    let (status, err) = server.admin_call("POST", "/admin/rooms", Some(body)).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("CONFLICT")));

    let (status, got) = server.admin_call("GET", "/admin/rooms/ops:1", None).await;
    assert_eq!((status, got["room"].as_str()), (200, Some("ops:1")));
    let (status, err) = server.admin_call("GET", "/admin/rooms/nope", None).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, _) = server
        .admin_call("PATCH", "/admin/rooms/nope", Some(json!({"title": "x"})))
        .await;
    assert_eq!(status, 404);
    let (status, err) = server
        .admin_call(
            "PATCH",
            "/admin/rooms/ops:1",
            Some(json!({"colour": "red"})),
        )
        .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("BAD_REQUEST")));

    // ann (owner) is connected: she sees the admin's changes
    let mut ann = server.connect("ann", &[]).await;
    ann.join("ops:1").await;
    let (status, room) = server
        .admin_call(
            "PATCH",
            "/admin/rooms/ops:1",
            Some(json!({"title": null, "maxUsers": 5})),
        )
        .await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(
        (room["title"].clone(), room["maxUsers"].clone()),
        (Value::Null, json!(5))
    );
    let event = until(&mut ann, "room:updated").await;
    assert_eq!(event["data"]["maxUsers"], 5);

    let (status, member) = server
        .admin_call(
            "PUT",
            "/admin/rooms/ops:1/members/cat",
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!((status, member["role"].as_str()), (201, Some("moderator")));
    let added = until(&mut ann, "member:added").await;
    assert_eq!(added["userId"], "cat");
    let (status, member) = server
        .admin_call(
            "PUT",
            "/admin/rooms/ops:1/members/cat",
            Some(json!({"muted": true})),
        )
        .await;
    assert_eq!((status, member["muted"].as_bool()), (200, Some(true)));
    let (status, list) = server
        .admin_call("GET", "/admin/rooms/ops:1/members?limit=2", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["members"].as_array().unwrap().len(), 2);
    assert_eq!(list["next"], "ben");
    let (status, _) = server
        .admin_call("DELETE", "/admin/rooms/ops:1/members/cat", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .admin_call("DELETE", "/admin/rooms/ops:1/members/cat", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .admin_call("DELETE", "/admin/rooms/ops:1", None)
        .await;
    assert_eq!(status, 200);
    no_message_before(&mut ann, "room:deleted").await;
    let (status, _) = server.admin_call("GET", "/admin/rooms/ops:1", None).await;
    assert_eq!(status, 404);
    let (status, _) = server
        .admin_call("DELETE", "/admin/rooms/ops:1", None)
        .await;
    assert_eq!(status, 404);
    // GET /admin/rooms still lists the rooms in use
    let (status, rooms) = server.admin_call("GET", "/admin/rooms", None).await;
    assert_eq!(status, 200);
    assert!(rooms["rooms"].is_array(), "{rooms}");
    // without the admin key
    let (status, _) = server.post("/admin/rooms", None, json!({})).await;
    assert_eq!(status, 401);
}

async fn members_are_listed_in_pages_sorted_by_user_id(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let members: Vec<Value> = (0..250)
        .map(|i| json!({"userId": format!("u{i:03}")}))
        .collect();
    let (status, _) = server
        .admin_call(
            "POST",
            "/admin/rooms",
            Some(json!({"room": "big", "type": "channel", "visibility": "private", "members": members})),
        )
        .await;
    assert_eq!(status, 201);
    let mut u = server.connect("u007", &[]).await;
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut cmd = json!({"type": "member:list", "room": "big"});
        if let Some(a) = &after {
            cmd["after"] = json!(a);
        }
        let page = u.ok(cmd).await;
        pages += 1;
        let list = page["members"].as_array().unwrap();
        assert!(list.len() <= 100, "default limit 100");
        seen.extend(
            list.iter()
                .map(|m| m["userId"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..250).map(|i| format!("u{i:03}")).collect();
    assert_eq!(seen, expected);
    let page = u
        .ok(json!({"type": "member:list", "room": "big", "limit": 200, "after": "u100"}))
        .await;
    assert_eq!(page["members"].as_array().unwrap().len(), 149);
    assert_eq!(page["next"], Value::Null);
    let (code, _) = refused(
        &mut u,
        json!({"type": "member:list", "room": "big", "limit": 201}),
    )
    .await;
    assert_eq!(code, "BAD_REQUEST");
    let (code, _) = refused(&mut u, json!({"type": "member:list", "room": "nope"})).await;
    assert_eq!(code, "NOT_FOUND");
}

async fn room_list_counts_unread_messages(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut owner = server.connect("owner", &["team:*"]).await;
    create(&mut owner, "team:b", "group", "private").await;
    create(&mut owner, "team:a", "channel", "public").await;
    owner.join("team:a").await;
    for i in 0..3 {
        send(&mut owner, "team:a", &format!("{i}")).await;
    }
    let mut other = server.connect("other", &["team:*"]).await;
    create(&mut other, "team:c", "group", "private").await;
    let listed = owner.ok(json!({"type": "room:list"})).await;
    let rooms = listed["rooms"].as_array().unwrap();
    let names: Vec<&str> = rooms.iter().map(|r| r["room"].as_str().unwrap()).collect();
    assert_eq!(names, ["team:a", "team:b"]);
    assert_eq!(
        (
            rooms[0]["lastSeq"].clone(),
            rooms[0]["lastReadSeq"].clone(),
            rooms[0]["unread"].clone()
        ),
        (json!(3), json!(0), json!(3))
    );
    assert_eq!(
        (rooms[1]["lastSeq"].clone(), rooms[1]["unread"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(rooms[1]["type"], "group");
}

async fn per_room_send_rates_come_from_the_room_or_the_config(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "[rooms.rate_limits]\n\"support:*\" = 1\n");
    let mut c = server.connect("agent", &["support:*", "team:*"]).await;
    // a pattern's rate, in an ad hoc room: 1 a second, so five at once
    // cannot all pass (unless the machine took five seconds to send them)
    c.join("support:1").await;
    assert!(burst(&mut c, "support:1", 5).await >= 1);
    // no pattern, no own rate: no per-room limit
    c.join("team:free").await;
    assert_eq!(burst(&mut c, "team:free", 5).await, 0);
    // a managed room's own rate
    c.ok(json!({"type": "room:create", "room": "team:slow", "roomType": "group", "visibility": "private", "rateLimit": 1}))
        .await;
    c.join("team:slow").await;
    assert!(burst(&mut c, "team:slow", 5).await >= 1);
    // ... which comes before the pattern's
    c.ok(json!({"type": "room:create", "room": "support:vip", "roomType": "group", "visibility": "private", "rateLimit": 1000}))
        .await;
    c.join("support:vip").await;
    assert_eq!(burst(&mut c, "support:vip", 5).await, 0);
    // and changes with room:update
    c.ok(json!({"type": "room:update", "room": "support:vip", "rateLimit": null}))
        .await;
    assert!(burst(&mut c, "support:vip", 5).await >= 1);
}

/// `realtime-server create-room` (the operator command, issue 16's CLI)
/// against this API: defaults, flags, and a clear failure when it exists.
#[actix_rt::test]
async fn the_create_room_command_makes_a_managed_room() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start_on(&db, "");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_realtime-server"))
            .args(args)
            .args(["--server", &server.url("")])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REALTIME_ADMIN_TOKEN", common::ADMIN_KEY)
            .output()
            .expect("run realtime-server");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success(),
            text + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = cli(&[
        "create-room",
        "team:cli",
        "--type",
        "group",
        "--visibility",
        "private",
        "--title",
        "CLI",
        "--json",
    ]);
    assert!(ok, "{out}");
    let room: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(
        (
            room["type"].as_str(),
            room["visibility"].as_str(),
            room["title"].as_str()
        ),
        (Some("group"), Some("private"), Some("CLI"))
    );
    let (ok, out) = cli(&["create-room", "team:plain", "--json"]);
    assert!(ok, "{out}");
    let room: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (room["type"].as_str(), room["visibility"].as_str()),
        (Some("channel"), Some("public"))
    );
    let (ok, out) = cli(&["create-room", "team:cli"]);
    assert!(!ok, "a second create-room must fail: {out}");
    assert!(out.contains("CONFLICT") || out.contains("409"), "{out}");
    let (status, _) = server
        .admin_call("GET", "/admin/rooms/team:plain", None)
        .await;
    assert_eq!(status, 200);
    let (status, err) = server
        .admin_call(
            "POST",
            "/admin/rooms",
            Some(json!({"room": "x", "type": "dm"})),
        )
        .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("BAD_REQUEST")));
}

/// Anonymous connections (`server.anonymous`) cannot be members: no room
/// commands, no joining a public managed room; reading one is allowed.
#[actix_rt::test]
async fn anonymous_connections_cannot_be_members() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start_with_env(
        "",
        &[
            ("DATABASE_URL", &db.url),
            ("REALTIME__SERVER__ANONYMOUS", "true"),
        ],
    );
    let (status, _) = server
        .admin_call("POST", "/admin/rooms", Some(json!({"room": "public:town"})))
        .await;
    assert_eq!(status, 201);
    let mut anon = server.connect_with("", &[]).await.unwrap();
    let (code, message) = refused(
        &mut anon,
        json!({"type": "room:join", "room": "public:town"}),
    )
    .await;
    assert_eq!(code, "FORBIDDEN", "{message}");
    assert!(message.contains("anonymous"), "{message}");
    let (code, _) = refused(&mut anon, json!({"type": "dm:open", "userId": "bob"})).await;
    assert_eq!(code, "FORBIDDEN");
    anon.ok(json!({"type": "history:get", "room": "public:town"}))
        .await;
    // the ad hoc public rooms work as before
    anon.join("lobby").await;
}
