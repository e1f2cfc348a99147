//! Start-up and shutdown of the real process.

mod common;

use std::time::Duration;

use common::{Closed, Server, WAIT};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

#[actix_rt::test]
async fn sigterm_closes_every_connection_with_1001_and_exits() {
    let mut server = Server::start("");
    let mut alice = server.connect("alice", &["r"]).await;
    let mut bob = server.connect("bob", &["r"]).await;
    alice.join("r").await;
    bob.join("r").await;

    server.terminate();
    assert_eq!(alice.closed(WAIT).await, Closed::Code(1001));
    assert_eq!(bob.closed(WAIT).await, Closed::Code(1001));
    // Within server.shutdown_timeout_secs (10), with room for a busy machine.
    let exit = server.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "exit status {exit:?}");
    let log = server.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[actix_rt::test]
async fn the_close_handshake_both_ways() {
    let server = Server::start("");
    // The client closes: the server echoes its code and reason, and the
    // connection ends at once.
    let mut alice = server.connect("alice", &[]).await;
    assert_eq!(
        alice.close_with(4321, "see you").await,
        (4321, "see you".to_string())
    );
    server
        .wait_stats("alice's connection to be gone", |s| s["connections"] == 0)
        .await;

    // The server closes: its close frame first; what the client sends
    // after it is neither carried out nor answered; without the client's
    // close frame, the TCP connection is dropped after a linger.
    let mut alice = server.connect("alice", &["r"]).await;
    let mut bob = server.connect("bob", &["r"]).await;
    alice.join("r").await;
    bob.join("r").await;
    alice.expect("user:joined").await;
    server
        .admin(
            "/admin/kick",
            serde_json::json!({"userId": "alice", "reason": "bye"}),
        )
        .await;
    alice.wait_unread().await; // the close frame has arrived, unread
    alice
        .send(serde_json::json!({"type": "message:send", "room": "r", "content": "too late", "id": 1}))
        .await;
    // Alice never answers the close (she has not read it): the server ends
    // the connection by itself, and she leaves the room.
    assert_eq!(bob.expect("user:left").await["userId"], "alice");
    let (code, reason, before) = alice.close_frame().await;
    assert_eq!((code, reason.as_str()), (4003, "bye"));
    assert!(before.is_empty(), "frames before the close: {before:?}");
    assert_eq!(alice.closed(WAIT).await, Closed::Dropped);
    // The command sent after the close frame was not carried out.
    let history = bob
        .ok(serde_json::json!({"type": "history:get", "room": "r"}))
        .await;
    assert_eq!(history["messages"], serde_json::json!([]), "{history}");
    bob.expect_silence().await;
}

/// RFC 6455 §7.1.1: after answering a client's close frame the server
/// closes the TCP connection first, cleanly (a FIN, not a reset), without
/// waiting for the client to hang up.
#[actix_rt::test]
async fn after_a_clients_close_the_server_closes_tcp_first() {
    use std::io::Read;

    use common::raw::{frame, RawWs, CLOSE};

    let server = Server::start("");
    let mut ws = RawWs::connect(server.addr, &server.token("alice", &[]));
    ws.send(&frame(CLOSE, true, &1000u16.to_be_bytes()));
    assert_eq!(ws.close_code(WAIT), 1000);
    // The client keeps its socket open and sends nothing more: the end of
    // the stream can only come from the server.
    ws.socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = [0u8; 64];
    match ws.socket.read(&mut rest) {
        Ok(0) => {}
        other => panic!("expected the server's FIN, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_client_that_reconnects_at_once_during_shutdown_does_not_hold_the_stop() {
    // The JavaScript client reconnects within milliseconds of a 1001. A
    // connection upgraded after the first round of 1001 closes is closed
    // too, so the process still stops well before shutdown_timeout_secs.
    let mut server = Server::start(""); // shutdown_timeout_secs: 10
    let mut alice = server.connect("alice", &["r"]).await;
    let started = std::time::Instant::now();
    server.terminate();
    assert_eq!(alice.closed(WAIT).await, Closed::Code(1001));
    let url = format!(
        "ws://{}/ws?token={}",
        server.addr,
        server.token("alice", &["r"])
    );
    let mut accepted = 0;
    for _ in 0..5 {
        // Refused once the listener has stopped; otherwise closed with 1001.
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            break;
        };
        accepted += 1;
        let code = loop {
            match tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("a close")
            {
                Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => break None,
            }
        };
        assert_eq!(code, Some(1001));
    }
    eprintln!("{accepted} late connections were accepted and closed");
    let exit = server.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
}

/// A client whose connection breaks off mid-frame and is reset (it closed
/// its socket with data unread, so its kernel answers with RST) went away:
/// logged and recorded like any connection that ended without a close
/// frame, not as a WebSocket protocol error.
#[actix_rt::test]
async fn a_reset_connection_is_a_client_gone_not_a_protocol_error() {
    let server = Server::start("");
    let token = server.token("resetter", &[]);
    let mut raw = common::raw::RawWs::connect(server.addr, &token);
    raw.send_text(r#"{"type":"ping","id":1}"#);
    // Let the pong arrive, unread; begin a frame and vanish mid-way: the
    // server's read ends inside a frame, and the kernel resets.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let whole = common::raw::frame(0x1, true, &[b'x'; 100]);
    raw.send(&whole[..10]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(raw);
    let deadline = tokio::time::Instant::now() + WAIT;
    let line = loop {
        let log = server.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("disconnect conn=") && l.contains("user=resetter"))
        {
            break line.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no disconnect logged:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        line.contains("code=1000") && line.contains("connection ended"),
        "{line}"
    );
    assert!(!server.log().contains("protocol error"), "{}", server.log());
}
