//! Ended connections are counted and logged as what they are
//! (`realtime_closes_total{reason}`, the `disconnect` line's `cause=`): a
//! client that drops its TCP connection without a close frame went away,
//! it did not break the protocol; and the publish-to-deliver histogram
//! counts one observation per recipient.

mod common;

use std::time::{Duration, Instant};

use common::raw::RawWs;
use common::{series, Server, WAIT};
use serde_json::json;

/// Waits until `/metrics` shows `want` for each `(name, labels)`.
async fn metrics_reach(server: &Server, want: &[(&str, &str, u64)]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, text) = server.get_text("/metrics").await;
        if want.iter().all(|(n, l, v)| series(&text, n, l) == *v) {
            return text;
        }
        assert!(Instant::now() < deadline, "expected {want:?} in:\n{text}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

const CLOSES: &str = "realtime_closes_total";

#[actix_rt::test]
async fn a_dropped_client_went_away_and_a_bad_frame_is_a_protocol_error() {
    let server = Server::start("");
    let (_, text) = server.get_text("/metrics").await;
    for cause in [
        "client_closed",
        "client_went_away",
        "protocol_error",
        "kick",
    ] {
        let labels = format!("reason=\"{cause}\"");
        assert_eq!(series(&text, CLOSES, &labels), 0, "{cause}");
    }

    // Dropped without a close frame: once with a FIN (the server's read
    // ends with "payload reached EOF before completing", an I/O error that
    // was logged and closed as 1002 "WebSocket protocol error" before), once
    // with a reset (SO_LINGER 0).
    let fin = RawWs::connect(server.addr, &server.token("fin", &[]));
    drop(fin);
    let reset = RawWs::connect(server.addr, &server.token("reset", &[]));
    reset.socket.set_nonblocking(true).unwrap();
    let reset = tokio::net::TcpStream::from_std(reset.socket).unwrap();
    reset.set_zero_linger().unwrap();
    drop(reset);
    // Closed properly by the client.
    let mut polite = server.connect("polite", &[]).await;
    assert_eq!(polite.close_with(1000, "bye").await.0, 1000);
    // An unmasked frame breaks the protocol: 1002.
    let mut rude = RawWs::connect(server.addr, &server.token("rude", &[]));
    rude.send(&[0x81, 0x02, b'h', b'i']);
    assert_eq!(rude.close_code(WAIT), 1002);
    // A kick.
    let _kicked = server.connect("kicked", &[]).await;
    server
        .admin("/admin/kick", json!({"userId": "kicked"}))
        .await;

    metrics_reach(
        &server,
        &[
            (CLOSES, "reason=\"client_went_away\"", 2),
            (CLOSES, "reason=\"client_closed\"", 1),
            (CLOSES, "reason=\"protocol_error\"", 1),
            (CLOSES, "reason=\"kick\"", 1),
        ],
    )
    .await;
    let log = server.log();
    let line = |user: &str| {
        log.lines()
            .find(|l| l.contains("disconnect conn=") && l.contains(&format!("user={user} ")))
            .unwrap_or_else(|| panic!("no disconnect line for {user}:\n{log}"))
            .to_string()
    };
    for user in ["fin", "reset"] {
        let l = line(user);
        assert!(l.contains("cause=client_went_away"), "{l}");
        assert!(!l.contains("protocol error"), "{l}");
    }
    assert!(line("polite").contains("cause=client_closed"), "{log}");
    let rude = line("rude");
    assert!(
        rude.contains("code=1002") && rude.contains("cause=protocol_error"),
        "{rude}"
    );
    assert!(line("kicked").contains("code=4003"), "{log}");
}

#[actix_rt::test]
async fn publish_to_deliver_latency_is_observed_once_per_message() {
    let server = Server::start("");
    let count = "realtime_publish_deliver_seconds_count";
    let inf = ("realtime_publish_deliver_seconds_bucket", "le=\"+Inf\"");
    let (_, text) = server.get_text("/metrics").await;
    assert_eq!(series(&text, count, ""), 0, "{text}");

    let mut alice = server.connect("alice", &[]).await;
    let mut bob = server.connect("bob", &[]).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice
        .ok(json!({"type": "message:send", "room": "lobby", "content": "hello"}))
        .await;
    bob.expect("message:new").await;
    // Handed to Alice's own connection and Bob's: one message, one figure.
    metrics_reach(&server, &[(count, "", 1), (inf.0, inf.1, 1)]).await;
    alice
        .ok(json!({"type": "message:send", "room": "lobby", "content": "again"}))
        .await;
    bob.expect("message:new").await;
    metrics_reach(&server, &[(count, "", 2), (inf.0, inf.1, 2)]).await;
}
