//! Protections against bad input, abuse and faults, each tested against the
//! real server.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::raw::rss_kib;
use common::{
    assert_ended, paced_flood, redis_prefix, redis_url, series, start_node, Backend, Closed,
    Server, TestDb, WAIT,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

#[actix_rt::test]
async fn deeply_nested_json_is_refused_without_harm() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &[]).await;
    let depth = 5000;
    let nested = format!(
        r#"{{"type":"ping","id":1,"x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    alice.send_raw(&nested).await;
    let e = alice.expect("error").await;
    assert_eq!(e["code"], "BAD_REQUEST", "{e}");
    assert!(e["message"].as_str().unwrap().contains("nested"), "{e}");
    assert_eq!(alice.request(json!({"type": "ping"})).await["type"], "pong");
}

#[actix_rt::test]
async fn fragmented_messages_are_reassembled_within_bounds() {
    let server = Server::start("[limits]\nmax_fragments = 8\n");
    let mut alice = server.connect("alice", &[]).await;
    // A command split into three frames works.
    let text = br#"{"type":"ping","id":"frag"}"#;
    let (a, rest) = text.split_at(5);
    let (b, c) = rest.split_at(5);
    alice
        .send_message(Message::Frame(Frame::message(
            a.to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    alice
        .send_message(Message::Frame(Frame::message(
            b.to_vec(),
            OpCode::Data(Data::Continue),
            false,
        )))
        .await;
    alice
        .send_message(Message::Frame(Frame::message(
            c.to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await;
    assert_eq!(alice.next().await["id"], "frag");
    // Many tiny fragments: closed with 1009 before the message completes.
    alice
        .send_message(Message::Frame(Frame::message(
            b"{".to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    for _ in 0..20 {
        alice
            .send_message(Message::Frame(Frame::message(
                b" ".to_vec(),
                OpCode::Data(Data::Continue),
                false,
            )))
            .await;
    }
    assert_eq!(alice.closed(WAIT).await, Closed::Code(1009));
}

#[actix_rt::test]
async fn invalid_utf8_text_closes_with_1007() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &[]).await;
    alice
        .send_message(Message::Frame(Frame::message(
            vec![b'{', 0xff, 0xfe, b'}'],
            OpCode::Data(Data::Text),
            true,
        )))
        .await;
    assert_eq!(alice.closed(WAIT).await, Closed::Code(1007));
    server
        .wait_stats("the connection to be gone", |s| s["connections"] == 0)
        .await;
}

#[test]
fn a_trickling_handshake_is_cut_off() {
    let server = Server::start_with_env(
        "",
        &[("REALTIME__SERVER__CLIENT_REQUEST_TIMEOUT_MS", "500")],
    );
    let mut socket = std::net::TcpStream::connect(server.addr).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    socket
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // ... and never finishes the request.
    let mut buf = [0u8; 1024];
    let mut answer = Vec::new();
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
        }
    }
    // Cut off by the 500 ms setting, not the 5 s default.
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "took {:?}",
        started.elapsed()
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[actix_rt::test]
async fn several_stalled_clients_cost_bounded_memory_and_slow_no_one() {
    let server = Server::start("[mailbox]\nsession = 16\n[limits]\nslow_consumer_grace_ms = 500\n");
    let mut reader = server.connect("reader", &["busy"]).await;
    reader.join("busy").await;
    let mut publisher = server.connect("publisher", &["busy"]).await;
    publisher.join("busy").await;
    let mut stalled = Vec::new();
    for i in 0..4 {
        let mut c = server
            .connect_small_buffer(&format!("stalled{i}"), &["busy"])
            .await;
        c.join("busy").await;
        stalled.push(c);
    }
    reader.drain().await;
    publisher.drain().await;
    let before = rss_kib(server.pid());
    let n = 3000;
    let (seqs, _reader) = paced_flood(&mut publisher, reader, "busy", n, 4000).await;
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<u64>>(),
        "the reading member missed messages"
    );
    let stats = server
        .wait_stats("the stalled clients to be closed", |s| {
            s["connections"] == 2
        })
        .await;
    assert_eq!(
        stats["nodes"][0]["slowConsumerCloses"], 4,
        "exactly the four clients that never read are slow consumers: {stats}"
    );
    // 3,000 x 4 KB went to each of 4 stalled clients: 48 MB if it were
    // buffered for them. What stays resident is far less.
    let growth_mib = rss_kib(server.pid()).saturating_sub(before) / 1024;
    assert!(growth_mib < 24, "server RSS grew by {growth_mib} MiB");
    for mut c in stalled {
        assert_ended(
            &mut c,
            Closed::Dropped,
            "a client that never reads sees its TCP connection end, not a 4009 close",
        )
        .await;
    }
}

#[actix_rt::test]
async fn a_reconnect_storm_leaves_exact_counts_and_no_leak() {
    let server = Server::start_with_env(
        "",
        &[
            (
                "REALTIME__RATE_LIMITS__CONNECTIONS_PER_IP_PER_SECOND",
                "100000",
            ),
            ("REALTIME__RATE_LIMITS__CONNECTIONS_PER_IP_BURST", "100000"),
            // 1,000 joins would be a million user:joined events to clients
            // that read nothing here (and would rightly be slow consumers).
            ("REALTIME__ROOMS__JOIN_LEAVE_EVENTS_MAX_USERS", "0"),
            // This test is about exact counts, not speed: on a slow machine
            // (a debug build, 1,000 handshakes at once) a handshake may wait
            // in the accept queue longer than the default 5 s.
            ("REALTIME__SERVER__CLIENT_REQUEST_TIMEOUT_MS", "60000"),
        ],
    );
    let users: u64 = 1000;
    // Everyone (re)connects at once, with a jitter of up to 200 ms.
    let storm = || {
        futures_util::future::join_all((0..users).map(|i| {
            let server = &server;
            async move {
                tokio::time::sleep(Duration::from_millis((i * 7919) % 200)).await;
                // While the background record writer is behind, the server
                // refuses upgrades with 503 and Retry-After after holding
                // them 5 s: come back then, as a client would.
                let token = server.token(&format!("u{i}"), &["storm"]);
                let mut attempt = 0;
                let mut c = loop {
                    attempt += 1;
                    match server.connect_with(&token, &[]).await {
                        Ok(c) => break c,
                        Err((503, body)) if attempt < 20 => {
                            let wait = body["retryAfterMs"].as_u64().expect("retryAfterMs");
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                        Err(refused) => panic!("connect attempt {attempt}: {refused:?}"),
                    }
                };
                // Every join answers with the room's member list (up to
                // 1,000), so a storm of joins is quadratic work; allow it time.
                // On a busy machine the session may give up waiting for the
                // registry (UNAVAILABLE, after its fixed 10 s) while the join
                // still happens: retry, as a client would (joining twice is
                // joining once).
                let join = json!({"type": "room:join", "room": "storm"});
                for attempt in 1.. {
                    let answer = c
                        .request_within(join.clone(), Duration::from_secs(60))
                        .await;
                    if answer["type"] == "reply" {
                        break;
                    }
                    assert!(
                        answer["code"] == "UNAVAILABLE" && attempt < 10,
                        "join attempt {attempt}: {answer}"
                    );
                }
                c
            }
        }))
    };
    let mut clients = storm().await;
    server
        .wait_stats("everyone connected", |s| s["connections"] == users)
        .await;
    let baseline = rss_kib(server.pid());
    for _ in 0..3 {
        drop(clients);
        clients = storm().await;
        let stats = server
            .wait_stats("everyone back", |s| s["connections"] == users)
            .await;
        assert_eq!(stats["users"], users);
        let members = server.admin_get("/admin/rooms/storm/presence").await["members"].clone();
        assert_eq!(members.as_array().unwrap().len() as u64, users);
    }
    drop(clients);
    server
        .wait_stats("all gone", |s| s["connections"] == 0 && s["users"] == 0)
        .await;
    let members = server.admin_get("/admin/rooms/storm/presence").await["members"].clone();
    assert_eq!(members, json!([]));
    let rooms = server.admin_get("/admin/rooms").await["rooms"].clone();
    assert_eq!(rooms, json!([]));
    let after = rss_kib(server.pid());
    assert!(
        after < baseline + 32 * 1024,
        "RSS {baseline} KiB -> {after} KiB after three storms"
    );
}

#[actix_rt::test]
async fn sigterm_under_load_keeps_every_acknowledged_message_and_tells_the_cluster() {
    let db = TestDb::new(Backend::Postgres);
    let prefix = redis_prefix();
    // A long TTL: only a clean departure can make node b's users leave fast.
    let long_ttl = [("REALTIME__REDIS__NODE_TTL_MS", "60000")];
    let a = start_node(&db, redis_url(), &prefix, "node-a", &long_ttl);
    let mut b = start_node(&db, redis_url(), &prefix, "node-b", &long_ttl);
    a.wait_ready().await;
    b.wait_ready().await;
    let mut watcher = a.connect("watcher", &["r"]).await;
    watcher.join("r").await;
    let mut sender = b.connect("sender", &["r"]).await;
    sender.join("r").await;
    assert_eq!(watcher.expect("user:joined").await["userId"], "sender");
    for j in 0..50 {
        sender
            .send(json!({"type": "message:send", "room": "r", "content": format!("{j}"), "id": j}))
            .await;
    }
    // The first acknowledgement, then SIGTERM while the rest are in flight.
    let mut acked = Vec::new();
    while acked.is_empty() {
        let f = sender.next().await;
        if f["type"] == "reply" {
            acked.push(f["data"]["seq"].as_u64().unwrap());
        }
    }
    b.terminate();
    let started = Instant::now();
    loop {
        match tokio::time::timeout(WAIT, sender.next_or_close())
            .await
            .expect("no close")
        {
            Ok(f) if f["type"] == "reply" => acked.push(f["data"]["seq"].as_u64().unwrap()),
            Ok(_) => {}
            Err(code) => {
                assert_eq!(code, Closed::Code(1001));
                break;
            }
        }
    }
    assert!(b.wait_exit(Duration::from_secs(20)).success());
    // The other node hears of it at once, not after a TTL.
    let mut left = false;
    while !left {
        let f = watcher.next().await;
        left = f["type"] == "user:left" && f["userId"] == "sender";
    }
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}: that is the 60 s TTL, not a clean departure",
        started.elapsed()
    );
    // Every acknowledged message is stored.
    let history = watcher
        .ok(json!({"type": "history:get", "room": "r", "limit": 100}))
        .await["messages"]
        .clone();
    let stored: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert!(!acked.is_empty(), "no message was acknowledged");
    for seq in &acked {
        assert!(
            stored.contains(seq),
            "acknowledged seq {seq} was lost; stored {stored:?}"
        );
    }
}

/// A series of `/metrics` for one actor.
fn actor_series(text: &str, name: &str, actor: &str) -> u64 {
    series(text, name, &format!("actor=\"{actor}\""))
}

/// The configured mailbox bound really holds: with a registry mailbox of
/// one and a tracker mailbox of two, hundreds of pipelined commands from
/// many connections never push the true queue length past the bound, and
/// every command is answered once (a reply, or UNAVAILABLE when the mailbox
/// was full), after which the connections work as before.
#[actix_rt::test]
async fn a_tiny_registry_mailbox_holds_its_bound_and_answers_every_command() {
    const REGISTRY: u64 = 1;
    const TRACKER: u64 = 2;
    let server = Server::start("[mailbox]\nregistry = 1\npresence = 2\n");
    let mut clients = Vec::new();
    for i in 0..16 {
        let mut c = server.connect(&format!("u{i}"), &["team:*"]).await;
        retrying(&mut c, json!({"type": "room:join", "room": "team:1"})).await;
        clients.push(c);
    }
    let refused_total = |text: &str| {
        actor_series(text, "realtime_mailbox_refused_total", "room_registry")
            + actor_series(text, "realtime_mailbox_refused_total", "presence_tracker")
    };
    let refused_before = refused_total(&server.get_text("/metrics").await.1);
    let done = std::cell::Cell::new(false);
    let scrape = async {
        let mut samples = 0;
        while !done.get() {
            let (status, text) = server.get_text("/metrics").await;
            assert_eq!(status, 200, "{text}");
            let registry = actor_series(&text, "realtime_mailbox_depth", "room_registry");
            let tracker = actor_series(&text, "realtime_mailbox_depth", "presence_tracker");
            assert!(registry <= REGISTRY, "registry depth {registry}");
            assert!(tracker <= TRACKER, "tracker depth {tracker}");
            samples += 1;
        }
        samples
    };
    const PER_CLIENT: u64 = 60;
    let storm = async {
        let answered = futures_util::future::join_all(clients.iter_mut().map(|c| async move {
            let commands = [
                json!({"type": "presence:get", "room": "team:1"}),
                json!({"type": "history:get", "room": "team:1", "limit": 5}),
                json!({"type": "typing:start", "room": "team:1"}),
                json!({"type": "presence:update", "status": "away"}),
            ];
            for id in 1..=PER_CLIENT {
                let mut command = commands[id as usize % commands.len()].clone();
                command["id"] = json!(id);
                c.send(command).await;
            }
            let (mut ok, mut busy) = (0, 0);
            let mut seen = std::collections::HashSet::new();
            while seen.len() < PER_CLIENT as usize {
                let frame = c.next().await;
                let Some(id) = frame["id"].as_u64() else {
                    continue; // an event (typing, presence) from the others
                };
                assert!(seen.insert(id), "command {id} answered twice: {frame}");
                match frame["type"].as_str() {
                    Some("reply") => ok += 1,
                    Some("error") => {
                        assert_eq!(frame["code"], "UNAVAILABLE", "{frame}");
                        assert!(
                            frame["message"].as_str().unwrap().contains("busy"),
                            "{frame}"
                        );
                        busy += 1;
                    }
                    _ => panic!("unexpected answer {frame}"),
                }
            }
            (ok, busy)
        }))
        .await;
        done.set(true);
        answered
    };
    let (samples, answered) = futures_util::join!(scrape, storm);
    assert!(samples > 0);
    let busy: u64 = answered.iter().map(|(_, b)| b).sum();
    let ok: u64 = answered.iter().map(|(o, _)| o).sum();
    assert_eq!(ok + busy, 16 * PER_CLIENT);
    let (_, text) = server.get_text("/metrics").await;
    let refused = refused_total(&text) - refused_before;
    assert!(
        refused > 0 && busy > 0,
        "the mailboxes never filled: {text}"
    );
    assert_eq!(refused, busy, "each refusal was answered once");
    assert!(ok > 0, "commands still went through");
    assert_eq!(
        actor_series(&text, "realtime_mailbox_capacity", "room_registry"),
        REGISTRY
    );
    // The storm is over: everything works again, on the same connections.
    for c in &mut clients {
        c.drain().await;
        let history = retrying(c, json!({"type": "history:get", "room": "team:1"})).await;
        assert!(history["messages"].is_array());
    }
    let mut late = server.connect("late", &["team:*"]).await;
    let joined = retrying(&mut late, json!({"type": "room:join", "room": "team:1"})).await;
    assert_eq!(joined["room"], "team:1");
}

/// A command's reply data, sent again while the answer is UNAVAILABLE (a
/// mailbox of one is often full for a moment, e.g. with the connection's own
/// `Connect`), as a client would.
async fn retrying(c: &mut common::Client, command: serde_json::Value) -> serde_json::Value {
    for _ in 0..100 {
        let answer = c.request(command.clone()).await;
        if answer["type"] == "reply" {
            return answer["data"].clone();
        }
        assert_eq!(answer["code"], "UNAVAILABLE", "{command} got {answer}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{command} stayed UNAVAILABLE");
}
