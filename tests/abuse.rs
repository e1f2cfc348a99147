//! Bad input, flooding, silent clients, slow consumers and connection limits.

mod common;

use std::time::Duration;

use common::{Client, Closed, Server};
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
    assert_eq!(
        alice.closed(Duration::from_secs(5)).await,
        Closed::Code(1009)
    );
    server
        .wait_stats("the connection to be gone", |s| s["connections"] == 0)
        .await;
}

#[actix_rt::test]
async fn flooding_gets_rate_limited_then_closed_with_4008() {
    let server = Server::start_with_env(
        "",
        &[
            ("REALTIME__RATE_LIMITS__COMMANDS_PER_SECOND", "2"),
            ("REALTIME__RATE_LIMITS__COMMANDS_BURST", "5"),
            ("REALTIME__RATE_LIMITS__FLOOD_CLOSE_AFTER", "3"),
        ],
    );
    let mut a1 = server.connect("alice", &[]).await;
    for _ in 0..5 {
        assert_eq!(a1.request(json!({"type": "ping"})).await["type"], "pong");
    }
    let e = a1.request(json!({"type": "ping"})).await;
    assert_eq!(e["code"], "RATE_LIMITED");
    let retry = e["retryAfterMs"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 500, "{e}");
    // Another connection of the same user shares the budget.
    let mut a2 = server.connect("alice", &[]).await;
    assert_eq!(
        a2.request(json!({"type": "ping"})).await["code"],
        "RATE_LIMITED"
    );
    // Another user does not.
    let mut bob = server.connect("bob", &[]).await;
    assert_eq!(bob.request(json!({"type": "ping"})).await["type"], "pong");
    // Keeping on: closed with 4008.
    a1.send(json!({"type": "ping"})).await;
    a1.send(json!({"type": "ping"})).await;
    assert_eq!(a1.closed(Duration::from_secs(5)).await, Closed::Code(4008));
    let stats = server.admin_get("/admin/stats").await;
    assert!(
        stats["nodes"][0]["rateLimited"].as_u64().unwrap() >= 4,
        "{stats}"
    );
}

#[actix_rt::test]
async fn a_silent_client_is_closed_with_4010_and_a_live_one_is_not() {
    let server = Server::start("[heartbeat]\ninterval_ms = 100\ntimeout_ms = 500\n");
    let mut silent = server.connect("alice", &["r"]).await;
    let mut live = server.connect("bob", &["r"]).await;
    silent.join("r").await;
    live.join("r").await;
    silent.expect("user:joined").await;
    assert_eq!(silent.connected["heartbeatIntervalMs"], 100);
    // `live` keeps reading, which answers the server's pings.
    let reader = actix_rt::spawn(async move {
        let left = live.expect("user:left").await;
        (live, left)
    });
    // `silent` reads nothing for well past the timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        silent.closed(Duration::from_secs(5)).await,
        Closed::Code(4010)
    );
    let (mut live, left) = reader.await.unwrap();
    assert_eq!(left["userId"], "alice");
    assert_eq!(live.request(json!({"type": "ping"})).await["type"], "pong");
    server
        .wait_stats("alice to be cleaned up", |s| {
            s["connections"] == 1 && s["users"] == 1
        })
        .await;
    let members = server.admin_get("/admin/rooms/r/presence").await["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 1);
}

/// Publishes `n` messages of `size` bytes into `room` while a reader
/// reads; returns the seqs the reader received, and both clients.
async fn flood(server: &Server, room: &str, n: usize, size: usize) -> (Vec<u64>, Vec<Client>) {
    let mut reader = server.connect("reader", &[room]).await;
    reader.join(room).await;
    let mut publisher = server.connect("publisher", &[room]).await;
    publisher.join(room).await;
    let reading = actix_rt::spawn(async move {
        let mut seqs = Vec::with_capacity(n);
        while seqs.len() < n {
            let frame = reader.next().await;
            if frame["type"] == "message:new" {
                seqs.push(frame["seq"].as_u64().unwrap());
            }
        }
        (seqs, reader)
    });
    let content = "x".repeat(size);
    for _ in 0..n {
        publisher
            .ok(json!({"type": "message:send", "room": room, "content": content}))
            .await;
    }
    let (seqs, reader) = reading.await.unwrap();
    (seqs, vec![reader, publisher])
}

#[actix_rt::test]
async fn a_client_that_stops_reading_is_dropped_while_the_others_keep_receiving() {
    let server = Server::start("[mailbox]\nsession = 16\n[limits]\nslow_consumer_grace_ms = 300\n");
    let mut stalled = server.connect_small_buffer("stalled", &["busy"]).await;
    stalled.join("busy").await;
    let (seqs, _others) = flood(&server, "busy", 3000, 4000).await;
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
    assert_eq!(stats["nodes"][0]["slowConsumerCloses"], 1, "{stats}");
    // Nothing is left queued for the closed session.
    assert_eq!(stats["nodes"][0]["mailboxDepth"]["session"], 0, "{stats}");
    // Its socket was shut down: after what was buffered, the stream ends.
    let end = stalled.closed(Duration::from_secs(10)).await;
    assert!(
        matches!(end, Closed::Dropped | Closed::Code(4009)),
        "{end:?}"
    );
    let members = server.admin_get("/admin/rooms/busy/presence").await["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 2);
}

#[actix_rt::test]
async fn a_slow_client_that_catches_up_is_told_4009() {
    let server =
        Server::start("[mailbox]\nsession = 16\n[limits]\nslow_consumer_grace_ms = 60000\n");
    let mut slow = server.connect_small_buffer("slow", &["busy"]).await;
    slow.join("busy").await;
    let (seqs, _others) = flood(&server, "busy", 3000, 4000).await;
    assert_eq!(seqs.len(), 3000);
    // It reads again: through what was queued, then the close frame.
    assert_eq!(
        slow.closed(Duration::from_secs(20)).await,
        Closed::Code(4009)
    );
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
    let (status, body) = server.connect_with(&token, &[]).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (429, "RATE_LIMITED")
    );
    assert_eq!(body["retryAfterMs"], 1000);
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
    let (status, body) = server.connect_with(&token, &[]).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (429, "RATE_LIMITED")
    );
    assert!(body["retryAfterMs"].as_u64().unwrap() > 0);
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
