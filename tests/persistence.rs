//! Durability, against both backends: embedded SQLite and the real
//! PostgreSQL of `tests/common/services.rs` (a fresh database per test).

#[macro_use]
mod common;

use std::time::Duration;

use common::{
    pg_addr, run_to_exit, scaled_ms, Backend, Client, Closed, Proxy, Server, TestDb, WAIT,
};
use serde_json::json;

on_both_backends!(
    restart_keeps_history_and_seq,
    recovery_with_and_without_overflow,
    client_msg_id_never_duplicates,
    offline_notifications_are_delivered_once_per_connection_until_read,
    the_audit_log_records_what_happened,
    concurrent_senders_get_unique_consecutive_seqs,
    two_writers_keep_every_rooms_seqs_consecutive,
);

fn seqs(list: &serde_json::Value) -> Vec<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

fn stop(server: &mut Server) {
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(20)).success());
}

async fn restart_keeps_history_and_seq(backend: Backend) {
    let db = TestDb::new(backend);
    let mut server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &["r"]).await;
    alice.join("r").await;
    for i in 1..=3 {
        let reply = alice.ok(json!({"type": "message:send", "room": "r", "content": format!("m{i}"), "metadata": {"i": i}})).await;
        assert_eq!(reply["seq"], i);
    }
    drop(alice);
    stop(&mut server);

    let server = Server::start_on(&db, "");
    // The shutdown flushed the background records: alice's disconnect is there.
    let events = server
        .admin_get("/admin/audit?userId=alice&kind=disconnect")
        .await["events"]
        .clone();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    let mut bob = server.connect("bob", &["r"]).await;
    let joined = bob
        .ok(json!({"type": "room:join", "room": "r", "since": 1}))
        .await;
    assert_eq!(joined["seq"], 3);
    assert_eq!(joined["recovered"], true);
    assert_eq!(seqs(&joined["missed"]), vec![2, 3]);
    assert_eq!(joined["missed"][0]["content"], "m2");
    assert_eq!(joined["missed"][0]["metadata"], json!({"i": 2}));
    assert_eq!(joined["missed"][0]["userId"], "alice");
    // seq goes on from where it was, never back.
    let reply = bob
        .ok(json!({"type": "message:send", "room": "r", "content": "after restart"}))
        .await;
    assert_eq!(reply["seq"], 4);
    let history = bob
        .ok(json!({"type": "history:get", "room": "r", "limit": 10}))
        .await;
    assert_eq!(seqs(&history["messages"]), vec![1, 2, 3, 4]);
    let page = bob
        .ok(json!({"type": "history:get", "room": "r", "before": 3, "limit": 1}))
        .await;
    assert_eq!(seqs(&page["messages"]), vec![2]);
    if backend == Backend::Postgres {
        // The operator views see the same.
        let stats = db.query("SELECT messages, members FROM room_stats WHERE room = 'r'");
        assert_eq!(stats, "4|1");
        let summary = db.query("SELECT status, users FROM presence_summary");
        assert_eq!(summary, "online|1");
        let active = db.query("SELECT user_id FROM active_connections");
        assert_eq!(active, "bob");
    }
}

async fn recovery_with_and_without_overflow(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "[limits]\nrecovery_max = 3\n");
    let mut alice = server.connect("alice", &["r"]).await;
    alice.join("r").await;
    for i in 1..=8 {
        alice
            .ok(json!({"type": "message:send", "room": "r", "content": format!("m{i}")}))
            .await;
    }
    let mut bob = server.connect("bob", &["r"]).await;
    let joined = bob
        .ok(json!({"type": "room:join", "room": "r", "since": 6}))
        .await;
    assert_eq!(
        (joined["seq"].clone(), joined["recovered"].clone()),
        (json!(8), json!(true))
    );
    assert_eq!(seqs(&joined["missed"]), vec![7, 8]);
    let mut carol = server.connect("carol", &["r"]).await;
    let joined = carol
        .ok(json!({"type": "room:join", "room": "r", "since": 2}))
        .await;
    assert_eq!(joined["recovered"], false, "6 missed, cap 3");
    assert_eq!(seqs(&joined["missed"]), vec![6, 7, 8]);
    // Up to date: nothing missed.
    let mut dave = server.connect("dave", &["r"]).await;
    let joined = dave
        .ok(json!({"type": "room:join", "room": "r", "since": 8}))
        .await;
    assert_eq!(
        (joined["missed"].clone(), joined["recovered"].clone()),
        (json!([]), json!(true))
    );
}

async fn client_msg_id_never_duplicates(backend: Backend) {
    let db = TestDb::new(backend);
    let mut server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &["r"]).await;
    let mut bob = server.connect("bob", &["r"]).await;
    alice.join("r").await;
    bob.join("r").await;
    alice.expect("user:joined").await;
    let send = json!({"type": "message:send", "room": "r", "content": "once", "clientMsgId": "k1"});
    let first = alice.ok(send.clone()).await;
    let again = alice.ok(send.clone()).await;
    assert_eq!(first, again);
    assert_eq!(bob.expect("message:new").await["seq"], first["seq"]);
    bob.expect_silence().await;
    // Another user's identical key is another message.
    let other = bob.ok(send.clone()).await;
    assert_eq!(other["seq"], 2);
    drop((alice, bob));
    stop(&mut server);
    // Across a restart too.
    let server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &["r", "r2"]).await;
    alice.join("r").await;
    assert_eq!(alice.ok(send).await, first);
    let history = alice.ok(json!({"type": "history:get", "room": "r"})).await;
    assert_eq!(seqs(&history["messages"]), vec![1, 2]);
    // The same key in another room is another message.
    alice.join("r2").await;
    let in_r2 =
        json!({"type": "message:send", "room": "r2", "content": "once", "clientMsgId": "k1"});
    assert_eq!(alice.ok(in_r2).await["seq"], 1);
    alice.expect("message:new").await;
    // A repeat sent before the first is written (likely the same batch)
    // gets the first one's answer.
    for id in [7, 8] {
        alice
            .send(json!({"type": "message:send", "room": "r", "content": "twice", "clientMsgId": "k2", "id": id}))
            .await;
    }
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let frame = alice.next().await;
        match frame["type"].as_str() {
            Some("reply") => replies.push(frame["data"].clone()),
            Some("message:new") => assert_eq!(frame["content"], "twice"),
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(replies[0], replies[1]);
    assert_eq!(replies[0]["seq"], 3);
    alice.expect_silence().await;
    let history = alice.ok(json!({"type": "history:get", "room": "r"})).await;
    assert_eq!(seqs(&history["messages"]), vec![1, 2, 3]);
}

async fn offline_notifications_are_delivered_once_per_connection_until_read(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    // Alice is offline.
    let answer = server
        .admin("/admin/notify", json!({"userId": "alice", "kind": "success", "title": "Build", "body": "green", "data": {"n": 1}}))
        .await;
    assert_eq!(answer["delivered"], 0);
    let id = answer["notificationId"].as_str().unwrap().to_string();

    // Her next connection gets it right after `connected`.
    let mut a1 = server.connect("alice", &[]).await;
    let n = a1.expect("notification").await;
    assert_eq!(
        (
            n["notificationId"].as_str().unwrap(),
            n["kind"].as_str().unwrap()
        ),
        (id.as_str(), "success")
    );
    assert_eq!(n["data"], json!({"n": 1}));
    a1.expect_silence().await;
    // Each new connection gets it once while it is unread.
    let mut a2 = server.connect("alice", &[]).await;
    assert_eq!(
        a2.expect("notification").await["notificationId"],
        id.as_str()
    );
    a2.expect_silence().await;

    a2.ok(json!({"type": "notification:read", "notificationId": id}))
        .await;
    // Reading again is fine; someone else's or an unknown id is not.
    a2.ok(json!({"type": "notification:read", "notificationId": id}))
        .await;
    assert_eq!(
        a2.err(json!({"type": "notification:read", "notificationId": "nope"}))
            .await,
        "BAD_REQUEST"
    );
    let mut bob = server.connect("bob", &[]).await;
    assert_eq!(
        bob.err(json!({"type": "notification:read", "notificationId": id}))
            .await,
        "BAD_REQUEST"
    );

    // Her other connection is told (once: reading again changed nothing).
    let synced = a1.expect("notification:read").await;
    assert_eq!(synced["notificationIds"], json!([id]));
    a1.expect_silence().await;

    // Read: not replayed any more.
    let mut a3 = server.connect("alice", &[]).await;
    a3.expect_silence().await;
    // A live one reaches the open connections once each, and is stored.
    let answer = server
        .admin("/admin/notify", json!({"userId": "alice", "title": "Live"}))
        .await;
    assert_eq!(answer["delivered"], 3);
    for c in [&mut a1, &mut a2, &mut a3] {
        assert_eq!(c.expect("notification").await["title"], "Live");
        c.expect_silence().await;
    }
}

async fn the_audit_log_records_what_happened(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut alice = server.connect("alice", &[]).await;
    let connection_id = alice.connection_id();
    server
        .admin("/admin/notify", json!({"userId": "alice", "title": "t"}))
        .await;
    server
        .admin(
            "/admin/kick",
            json!({"userId": "alice", "reason": "audit me"}),
        )
        .await;
    assert_eq!(alice.closed(WAIT).await, Closed::Code(4003));
    // Records are written in the background: wait for the disconnect.
    let deadline = tokio::time::Instant::now() + WAIT;
    let events = loop {
        let events = server.admin_get("/admin/audit?userId=alice").await["events"].clone();
        if events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "disconnect")
        {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no disconnect event: {events}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["connect", "notify", "kick", "disconnect"],
        "{events}"
    );
    let connect = &events.as_array().unwrap()[3];
    assert_eq!(connect["connectionId"], connection_id.as_str());
    let kick = &events.as_array().unwrap()[1];
    assert_eq!(
        kick["detail"],
        json!({"reason": "audit me", "disconnected": 1})
    );
    let disconnect = &events.as_array().unwrap()[0];
    assert_eq!(disconnect["detail"]["code"], 4003);
    let kicks = server.admin_get("/admin/audit?kind=kick&limit=5").await["events"].clone();
    assert_eq!(kicks.as_array().unwrap().len(), 1);
    let (status, _) = server
        .get("/admin/audit?limit=0", Some(common::ADMIN_KEY))
        .await;
    assert_eq!(status, 400);
}

/// Sends `count` messages to `room` pipelined (without waiting for
/// answers), then reads until each has its seq (by command id) and `total`
/// `message:new` of the room have arrived: (this sender's seqs by id, every
/// seq delivered).
async fn send_pipelined(
    c: &mut Client,
    room: &str,
    count: u64,
    total: u64,
) -> (Vec<u64>, Vec<u64>) {
    for j in 0..count {
        c.send(json!({"type": "message:send", "room": room, "content": format!("{j}"), "id": j}))
            .await;
    }
    let mut mine = vec![0u64; count as usize];
    let mut delivered = Vec::new();
    while mine.contains(&0) || (delivered.len() as u64) < total {
        let frame = c.next().await;
        match frame["type"].as_str().unwrap() {
            "reply" => {
                mine[frame["id"].as_u64().unwrap() as usize] =
                    frame["data"]["seq"].as_u64().unwrap()
            }
            "message:new" => delivered.push(frame["seq"].as_u64().unwrap()),
            "user:joined" => {}
            _ => panic!("unexpected {frame}"),
        }
    }
    (mine, delivered)
}

async fn concurrent_senders_get_unique_consecutive_seqs(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut senders = Vec::new();
    for i in 0..4 {
        let mut c = server.connect(&format!("user{i}"), &["busy"]).await;
        c.join("busy").await;
        senders.push(c);
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut c| {
            actix_rt::spawn(async move {
                let (mine, delivered) = send_pipelined(&mut c, "busy", 50, 200).await;
                // The connection lives on until every sender is done: a
                // sender that left early would send the others user:left.
                (mine, delivered, c)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut done = Vec::new();
    for t in tasks {
        let (mine, delivered, c) = t.await.unwrap();
        done.push(c);
        // One sender's messages keep their order...
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        // ...and every member receives every message once, in seq order.
        assert_eq!(delivered, (1..=200).collect::<Vec<u64>>());
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<u64>>());
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(
        metrics.contains("realtime_db_written_messages_total{"),
        "{metrics}"
    );
}

/// With `database.message_writers = 2` the rooms are shared out between
/// two writers, each with its own transactions: every room still gets
/// seqs 1, 2, 3... with no gap or repeat, one sender's messages in the order
/// sent, and each member of a room receives the room's messages in seq order.
async fn two_writers_keep_every_rooms_seqs_consecutive(backend: Backend) {
    const ROOMS: usize = 4;
    const EACH: u64 = 40;
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "[database]\nmessage_writers = 2\n");
    let mut senders = Vec::new();
    for r in 0..ROOMS {
        for s in 0..2 {
            let room = format!("public:w{r}");
            let mut c = server.connect(&format!("u{r}-{s}"), &["public:*"]).await;
            c.join(&room).await;
            senders.push((room, c));
        }
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(room, mut c)| {
            actix_rt::spawn(async move {
                let (mine, delivered) = send_pipelined(&mut c, &room, EACH, 2 * EACH).await;
                (room, mine, delivered, c)
            })
        })
        .collect();
    let mut by_room: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut done = Vec::new();
    for t in tasks {
        let (room, mine, delivered, c) = t.await.unwrap();
        done.push(c);
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{room}: {mine:?}");
        assert_eq!(delivered, (1..=2 * EACH).collect::<Vec<u64>>(), "{room}");
        by_room.entry(room).or_default().extend(mine);
    }
    assert_eq!(by_room.len(), ROOMS);
    for (room, mut all) in by_room {
        all.sort_unstable();
        assert_eq!(all, (1..=2 * EACH).collect::<Vec<u64>>(), "{room}");
    }
    // What was acknowledged is what is stored.
    let history = done[0]
        .ok(json!({"type": "history:get", "room": "public:w0", "limit": 100}))
        .await;
    assert_eq!(
        seqs(&history["messages"]),
        (1..=2 * EACH).collect::<Vec<u64>>()
    );
}

#[actix_rt::test]
async fn postgres_down_gives_unavailable_and_recovers() {
    let db = TestDb::new(Backend::Postgres);
    let proxy = Proxy::start(pg_addr());
    let url = db.url_via(proxy.addr);
    let config = format!("[database]\ntimeout_ms = {}\n", scaled_ms(2000));
    let server = Server::start_with_env(&config, &[("DATABASE_URL", &url)]);
    let mut alice = server.connect("alice", &["r"]).await;
    alice.join("r").await;
    assert_eq!(
        alice
            .ok(json!({"type": "message:send", "room": "r", "content": "before"}))
            .await["seq"],
        1
    );
    alice.expect("message:new").await;

    proxy.down();
    let started = std::time::Instant::now();
    let answer = alice
        .request(json!({"type": "message:send", "room": "r", "content": "during"}))
        .await;
    assert_eq!(answer["code"], "UNAVAILABLE", "{answer}");
    // Within database.timeout_ms (2 s), not the 20 s a stuck server would take.
    assert!(
        started.elapsed() < common::scaled(10_000),
        "took {:?}",
        started.elapsed()
    );
    // Nobody got the unstored message.
    alice.expect_silence().await;
    // Rooms, presence and typing keep working.
    let mut bob = server.connect("bob", &["r"]).await;
    let joined = bob
        .ok(json!({"type": "room:join", "room": "r", "since": 0}))
        .await;
    assert_eq!(joined["recovered"], false);
    assert_eq!(alice.expect("user:joined").await["userId"], "bob");
    bob.ok(json!({"type": "typing:start", "room": "r"})).await;
    assert_eq!(alice.expect("typing:event").await["users"], json!(["bob"]));
    bob.ok(json!({"type": "presence:update", "status": "away"}))
        .await;
    assert_eq!(alice.expect("presence:changed").await["status"], "away");
    let (status, ready) = server.get("/ready", None).await;
    assert_eq!(
        (status, &ready["checks"]["database"]),
        (503, &json!("down")),
        "{ready}"
    );
    let (status, body) = server
        .post(
            "/admin/notify",
            Some(common::ADMIN_KEY),
            json!({"userId": "bob", "title": "t"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (503, "UNAVAILABLE")
    );

    proxy.up();
    server.wait_ready().await;
    let reply = alice
        .ok(json!({"type": "message:send", "room": "r", "content": "after"}))
        .await;
    assert_eq!(reply["seq"], 2, "the unstored message took no seq");
    let history = bob.ok(json!({"type": "history:get", "room": "r"})).await;
    assert_eq!(seqs(&history["messages"]), vec![1, 2]);
    // Background records from the outage were retried and written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let events = server.admin_get("/admin/audit?userId=bob").await["events"].clone();
        if events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "connect")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's connect was never written"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `realtime-server migrate` on `db` with a clean environment, in a
/// temporary directory, with a deadline; returns its log.
fn migrate(db: &TestDb) -> String {
    let cwd = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", db.url.as_str()), ("RUST_LOG", "info")];
    let (ok, log) = run_to_exit(&["migrate"], &env, cwd.path());
    assert!(ok, "{:?}: {log}", db.backend);
    log
}

/// Every table, view, column and index of `db`, and the migrations
/// recorded as applied: one line each, sorted.
fn schema(db: &TestDb) -> Vec<String> {
    let text = match db.backend {
        Backend::Postgres => [
            "SELECT table_type || ' ' || table_name FROM information_schema.tables WHERE table_schema = 'public'",
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable FROM information_schema.columns WHERE table_schema = 'public'",
            "SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'",
            "SELECT 'migration ' || version FROM __diesel_schema_migrations",
        ]
        .map(|sql| db.query(sql))
        .join("\n"),
        Backend::Sqlite => {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Line {
                #[diesel(sql_type = diesel::sql_types::Text)]
                line: String,
            }
            let mut conn = db.sqlite();
            let lines: Vec<Line> = diesel::sql_query(
                "SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS line FROM sqlite_master \
                 UNION ALL SELECT 'migration ' || version FROM __diesel_schema_migrations",
            )
            .load(&mut conn)
            .unwrap();
            lines.into_iter().map(|l| l.line).collect::<Vec<_>>().join("\n")
        }
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn migrate_applies_once_and_is_idempotent() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend);
        let log = migrate(&db);
        assert!(
            log.contains("applied migrations 20261121000001"),
            "{backend:?}: {log}"
        );
        let first = schema(&db);
        for table in [
            "rooms",
            "messages",
            "room_members",
            "presence",
            "connections",
            "audit_events",
            "notifications",
        ] {
            assert!(
                first.iter().any(|l| l == &format!("BASE TABLE {table}")
                    || l.starts_with(&format!("table {table} "))),
                "{backend:?}: no table {table} after `migrate`: {first:#?}"
            );
        }
        assert!(
            first.contains(&"migration 20261121000001".to_string()),
            "{backend:?}: {first:#?}"
        );
        // Again: nothing to apply, nothing changed.
        let log = migrate(&db);
        assert!(log.contains("is up to date"), "{backend:?}: {log}");
        assert_eq!(
            schema(&db),
            first,
            "{backend:?}: the second run changed the schema"
        );
    }
}
