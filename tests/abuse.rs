//! Bad input, flooding, silent clients, slow consumers and connection limits.

mod common;

use common::{assert_ended, paced_flood, scaled_ms, Client, Closed, Server, WAIT};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[actix_rt::test]
async fn bad_frames_get_error_codes_and_the_socket_stays_usable() {
    let server = Server::start("[limits]\nmax_message_chars = 100\n");
    let mut alice = server.connect("alice", &["r"]).await;
    alice.send_raw("{not json").await;
    let e = alice.expect("error").await;
    assert_eq!(e["code"], "BAD_REQUEST");
    assert!(e.get("id").is_none());
    alice.join("r").await;
    let refused = [
        (json!({"type": "dance"}), "UNKNOWN_TYPE"),
        (json!({"type": "room:join"}), "BAD_REQUEST"),
        (json!({"type": "room:join", "room": 42}), "BAD_REQUEST"),
        (json!({"type": "room:join", "room": "a*"}), "BAD_REQUEST"),
        (
            json!({"type": "presence:update", "status": "dancing"}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "history:get", "room": "r", "limit": 1000}),
            "BAD_REQUEST",
        ),
        (
            json!({"type": "message:send", "room": "r", "content": "x".repeat(101)}),
            "TOO_LARGE",
        ),
        (json!({"type": "message:send", "room": "r"}), "BAD_REQUEST"),
    ];
    for (command, code) in refused {
        assert_eq!(alice.err(command.clone()).await, code, "{command}");
    }
    alice.send_raw("[1, 2]").await;
    assert_eq!(alice.expect("error").await["code"], "BAD_REQUEST");
    alice.send_message(Message::Binary(vec![1, 2, 3])).await;
    let e = alice.expect("error").await;
    assert_eq!(e["code"], "BAD_REQUEST");
    assert!(e["message"].as_str().unwrap().contains("binary"));
    // A string id is echoed as a string.
    alice.send_raw(r#"{"id":"abc","type":"nope"}"#).await;
    assert_eq!(alice.expect("error").await["id"], "abc");
    // Still usable.
    let reply = alice
        .ok(json!({"type": "message:send", "room": "r", "content": "still here"}))
        .await;
    assert_eq!(reply["seq"], 1);
}

#[actix_rt::test]
async fn frames_over_the_size_limit_close_with_1009() {
    let server = Server::start("[limits]\nmax_frame_bytes = 1024\n");
    let mut alice = server.connect("alice", &[]).await;
    alice
        .send_raw(&format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(2000)
        ))
        .await;
    assert_eq!(alice.closed(WAIT).await, Closed::Code(1009));
    server
        .wait_stats("the connection to be gone", |s| s["connections"] == 0)
        .await;
}

/// One unit a second (the slowest refill there is), so nothing refills
/// between commands sent back to back, however busy the machine.
const SLOW_BUDGET: [(&str, &str); 3] = [
    ("REALTIME__RATE_LIMITS__COMMANDS_PER_SECOND", "1"),
    ("REALTIME__RATE_LIMITS__COMMANDS_BURST", "5"),
    ("REALTIME__RATE_LIMITS__FLOOD_CLOSE_AFTER", "3"),
];

#[actix_rt::test]
async fn flooding_gets_rate_limited_then_closed_with_4008() {
    let server = Server::start_with_env("", &SLOW_BUDGET);
    let mut a1 = server.connect("alice", &[]).await;
    let mut a2 = server.connect("alice", &[]).await;
    let mut bob = server.connect("bob", &[]).await;
    // Seven pings at once, six on one connection and one on another of the
    // same user: they share the budget of five.
    for id in 1..=6 {
        a1.send(json!({"type": "ping", "id": id})).await;
    }
    a2.send(json!({"type": "ping", "id": 7})).await;
    let mut answers: Vec<_> = Vec::new();
    for _ in 0..6 {
        answers.push(a1.next().await);
    }
    answers.push(a2.next().await);
    let pongs = answers.iter().filter(|f| f["type"] == "pong").count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|f| f["code"] == "RATE_LIMITED")
        .collect();
    assert_eq!(
        (pongs, limited.len()),
        (5, 2),
        "a burst of 5 shared by alice's two connections: {answers:?}"
    );
    for e in &limited {
        let retry = e["retryAfterMs"].as_u64().unwrap();
        assert!(retry > 0 && retry <= 1000, "{e}");
        assert_eq!(e["message"], "rate limit exceeded, slow down", "{e}");
    }
    // Another user has a budget of its own.
    assert_eq!(bob.request(json!({"type": "ping"})).await["type"], "pong");
    // Keeping on: closed with 4008 after three refusals in a row on this
    // connection (a unit refilled meanwhile lets one through and starts
    // the count again, so count, rather than assume).
    let mut in_a_row = answers[..6]
        .iter()
        .rev()
        .take_while(|f| f["code"] == "RATE_LIMITED")
        .count();
    let mut more = Vec::new();
    while in_a_row < 3 {
        let answer = a1.request(json!({"type": "ping"})).await;
        in_a_row = if answer["code"] == "RATE_LIMITED" {
            in_a_row + 1
        } else {
            0
        };
        more.push(answer);
        assert!(more.len() < 100, "never three refusals in a row: {more:?}");
    }
    assert_eq!(
        a1.closed(WAIT).await,
        Closed::Code(4008),
        "three RATE_LIMITED answers in a row close the connection: {more:?}"
    );
    let stats = server.admin_get("/admin/stats").await;
    assert!(
        stats["nodes"][0]["rateLimited"].as_u64().unwrap() >= 3,
        "two refusals, then at least one more to make three in a row: {stats}"
    );
}

#[actix_rt::test]
async fn every_frame_costs_a_unit_and_rate_limited_replaces_other_errors() {
    let server = Server::start_with_env("", &SLOW_BUDGET);
    let mut alice = server.connect("alice", &[]).await;
    // Malformed text frames cost a unit each, like commands.
    for _ in 0..2 {
        alice.send_raw("{not json").await;
    }
    alice.send_raw(r#"{"id":"u","type":"dance"}"#).await;
    alice.send_raw("[1, 2]").await;
    for code in ["BAD_REQUEST", "BAD_REQUEST", "UNKNOWN_TYPE", "BAD_REQUEST"] {
        assert_eq!(alice.next().await["code"], code);
    }
    // The fifth unit.
    assert_eq!(alice.request(json!({"type": "ping"})).await["type"], "pong");
    // Over budget: the answer is RATE_LIMITED whatever else was wrong, with
    // the id when one could be read.
    alice.send_raw(r#"{"id":"x","type":"dance"}"#).await;
    let e = alice.next().await;
    assert_eq!(
        (&e["code"], &e["id"]),
        (&json!("RATE_LIMITED"), &json!("x")),
        "{e}"
    );
    alice.send_raw("{not json").await;
    let e = alice.next().await;
    assert_eq!(e["code"], "RATE_LIMITED", "{e}");
    assert!(e.get("id").is_none(), "{e}");
}

#[actix_rt::test]
async fn a_command_let_through_starts_the_flood_count_again() {
    // A bucket of one unit: however long a wait, one command gets through.
    let server = Server::start_with_env(
        "",
        &[
            ("REALTIME__RATE_LIMITS__COMMANDS_PER_SECOND", "1"),
            ("REALTIME__RATE_LIMITS__COMMANDS_BURST", "1"),
            ("REALTIME__RATE_LIMITS__FLOOD_CLOSE_AFTER", "3"),
        ],
    );
    let mut alice = server.connect("alice", &[]).await;
    // Pings until `refusals` RATE_LIMITED answers in a row (a unit that
    // refills meanwhile lets one through and starts again); the last wait.
    async fn refused_in_a_row(alice: &mut Client, refusals: usize) -> u64 {
        let mut in_a_row = 0;
        let mut retry = 0;
        while in_a_row < refusals {
            let answer = alice.request(json!({"type": "ping"})).await;
            if answer["code"] == "RATE_LIMITED" {
                in_a_row += 1;
                retry = answer["retryAfterMs"].as_u64().unwrap();
            } else {
                assert_eq!(answer["type"], "pong", "{answer}");
                in_a_row = 0;
            }
        }
        retry
    }
    let retry = refused_in_a_row(&mut alice, 2).await;
    // Wait for the unit: one ping gets through...
    tokio::time::sleep(std::time::Duration::from_millis(retry + 50)).await;
    assert_eq!(alice.request(json!({"type": "ping"})).await["type"], "pong");
    // ...so two more refusals are two in a row, not four: still open.
    let retry = refused_in_a_row(&mut alice, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(retry + 50)).await;
    assert_eq!(alice.request(json!({"type": "ping"})).await["type"], "pong");
}

#[actix_rt::test]
async fn a_silent_client_is_closed_with_4010_and_a_live_one_is_not() {
    let timeout = scaled_ms(3000);
    let server = Server::start(&format!(
        "[heartbeat]\ninterval_ms = 200\ntimeout_ms = {timeout}\n"
    ));
    let mut silent = server.connect("alice", &["r"]).await;
    let mut live = server.connect("bob", &["r"]).await;
    silent.join("r").await;
    live.join("r").await;
    silent.expect("user:joined").await;
    assert_eq!(silent.connected["heartbeatIntervalMs"], 200);
    // `live` keeps reading, which answers the server's pings; `silent`
    // reads nothing (reading would answer them) until `live` sees it go.
    let left = live.next().await;
    assert_eq!(
        (&left["type"], &left["userId"]),
        (&json!("user:left"), &json!("alice")),
        "{left}"
    );
    assert_eq!(silent.closed(WAIT).await, Closed::Code(4010));
    assert_eq!(live.request(json!({"type": "ping"})).await["type"], "pong");
    server
        .wait_stats("alice to be cleaned up", |s| {
            s["connections"] == 1 && s["users"] == 1
        })
        .await;
    let members = server.admin_get("/admin/rooms/r/presence").await["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 1);
}

/// Floods `room` (3,000 messages of 4 KB) with a publisher paced by a
/// reader that keeps up; returns what the reader received, and both.
async fn flood(server: &Server, room: &str) -> (Vec<u64>, Vec<Client>) {
    let mut reader = server.connect("reader", &[room]).await;
    reader.join(room).await;
    let mut publisher = server.connect("publisher", &[room]).await;
    publisher.join(room).await;
    reader.drain().await;
    let (seqs, reader) = paced_flood(&mut publisher, reader, room, 3000, 4000).await;
    (seqs, vec![reader, publisher])
}

#[actix_rt::test]
async fn a_client_that_stops_reading_is_dropped_while_the_others_keep_receiving() {
    let server = Server::start("[mailbox]\nsession = 16\n[limits]\nslow_consumer_grace_ms = 300\n");
    let mut stalled = server.connect_small_buffer("stalled", &["busy"]).await;
    stalled.join("busy").await;
    let (seqs, _others) = flood(&server, "busy").await;
    assert_eq!(
        seqs,
        (1..=3000).collect::<Vec<u64>>(),
        "the reading member lost or reordered messages"
    );
    let stats = server
        .wait_stats("the stalled connection to be closed", |s| {
            s["connections"] == 2
        })
        .await;
    assert_eq!(
        stats["nodes"][0]["slowConsumerCloses"], 1,
        "exactly one slow consumer, the client that never reads: {stats}"
    );
    // Nothing is left queued for the closed session.
    assert_eq!(stats["nodes"][0]["mailboxDepth"]["session"], 0, "{stats}");
    // It never read, so the 4009 close frame could not reach it: after the
    // grace period its socket was shut down, and after what was buffered
    // the stream ends without a close frame.
    assert_ended(
        &mut stalled,
        Closed::Dropped,
        "a client that never reads sees its TCP connection end, not a 4009 close",
    )
    .await;
    let members = server.admin_get("/admin/rooms/busy/presence").await["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 2);
}

#[actix_rt::test]
async fn a_slow_client_that_catches_up_is_told_4009() {
    let server =
        Server::start("[mailbox]\nsession = 16\n[limits]\nslow_consumer_grace_ms = 60000\n");
    let mut slow = server.connect_small_buffer("slow", &["busy"]).await;
    slow.join("busy").await;
    let (seqs, _others) = flood(&server, "busy").await;
    assert_eq!(seqs.len(), 3000);
    let stats = server.admin_get("/admin/stats").await;
    assert_eq!(
        stats["nodes"][0]["slowConsumerCloses"], 1,
        "exactly one slow consumer, the client that does not read during the flood: {stats}"
    );
    // It reads again, within the grace period: through what was queued,
    // then the close frame.
    assert_ended(
        &mut slow,
        Closed::Code(4009),
        "a slow client that reads again gets the 4009 close frame",
    )
    .await;
    server
        .wait_stats("the slow connection to be gone", |s| s["connections"] == 2)
        .await;
}

#[actix_rt::test]
async fn connections_are_limited_per_user_and_per_address() {
    let server = Server::start("[limits]\nmax_connections_per_user = 2\n");
    let token = server.token("alice", &[]);
    let first = server.connect_with(&token, &[]).await.unwrap();
    let _second = server.connect_with(&token, &[]).await.unwrap();
    let (status, retry_after, body) = server.refused_upgrade(&token).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (429, "RATE_LIMITED")
    );
    assert_eq!(body["retryAfterMs"], 1000);
    assert_eq!(retry_after.as_deref(), Some("1"), "Retry-After in seconds");
    // Closing one frees a slot.
    drop(first);
    server
        .wait_stats("a slot to free", |s| s["connections"] == 1)
        .await;
    server.connect_with(&token, &[]).await.unwrap();

    let server = Server::start_with_env(
        "",
        &[
            ("REALTIME__RATE_LIMITS__CONNECTIONS_PER_IP_PER_SECOND", "1"),
            ("REALTIME__RATE_LIMITS__CONNECTIONS_PER_IP_BURST", "2"),
        ],
    );
    let token = server.token("bob", &[]);
    let _a = server.connect_with(&token, &[]).await.unwrap();
    let _b = server.connect_with(&token, &[]).await.unwrap();
    let (status, retry_after, body) = server.refused_upgrade(&token).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (429, "RATE_LIMITED")
    );
    let retry_ms = body["retryAfterMs"].as_u64().unwrap();
    assert!(retry_ms > 0 && retry_ms <= 1000, "{body}");
    // Whole seconds, rounded up, at least 1.
    assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
}

#[actix_rt::test]
async fn a_full_node_answers_503() {
    let server = Server::start("[limits]\nmax_connections = 2\n");
    let _a = server.connect("a", &[]).await;
    let _b = server.connect("b", &[]).await;
    let token = server.token("c", &[]);
    let (status, body) = server.connect_with(&token, &[]).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (503, "UNAVAILABLE")
    );
}
