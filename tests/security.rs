//! The findings of the outside security probe (issue 11), each as the probe
//! saw it: hostile frames over a raw socket, floods of frames that are not
//! commands, extreme integers, foreign token shapes, weak keys and invisible
//! characters.

mod common;

use std::io::Write;

use common::raw::{self, header, rss_kib, RawWs, Received};
use common::*;
use realtime_server::auth::Audience;
use serde_json::json;

/// The frame limit the tests run with (the default, `limits.max_frame_bytes`).
const MAX_FRAME: u64 = 65_536;

/// Streams `total` bytes of payload on a second handle of the socket, from a
/// thread, stopping at the first write error (the server closing).
fn stream_payload(ws: &RawWs, total: usize) -> std::thread::JoinHandle<usize> {
    let mut socket = ws.socket.try_clone().unwrap();
    std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            match socket.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    })
}

/// An oversized frame, however it arrives, is refused with 1009 from its
/// header: the server neither waits for nor keeps its payload.
#[test]
fn oversized_frames_close_with_1009_from_the_header_without_buffering() {
    let server = Server::start("");
    let token = server.token("mallory", &[]);
    let baseline = rss_kib(server.pid());

    // 1. A header declaring 2^40 bytes, no payload at all.
    let mut ws = RawWs::connect(server.addr, &token);
    ws.send(&header(raw::TEXT, true, 1 << 40));
    assert_eq!(ws.close_code(WAIT), 1009, "header-only oversized frame");

    // 2. A header just over the limit with part of its payload: no waiting
    //    for the rest.
    let mut ws = RawWs::connect(server.addr, &token);
    ws.send(&header(raw::TEXT, true, MAX_FRAME + 1));
    ws.send(&[b'x'; 1000]);
    assert_eq!(ws.close_code(WAIT), 1009, "partial oversized frame");

    // 3. A header declaring 2^40 bytes followed by 256 MiB streamed as fast
    //    as the server takes them.
    let mut ws = RawWs::connect(server.addr, &token);
    ws.send(&header(raw::TEXT, true, 1 << 40));
    let writer = stream_payload(&ws, 256 << 20);
    assert_eq!(ws.close_code(WAIT), 1009, "streamed oversized frame");
    let streamed = writer.join().unwrap();

    // 4. A fragmented message whose continuation declares 2^40 bytes, then
    //    streams.
    let mut ws = RawWs::connect(server.addr, &token);
    ws.send(&raw::frame(raw::TEXT, false, br#"{"type":"#));
    ws.send(&header(raw::CONTINUATION, false, 1 << 40));
    let writer2 = stream_payload(&ws, 256 << 20);
    assert_eq!(ws.close_code(WAIT), 1009, "oversized continuation");
    let streamed2 = writer2.join().unwrap();

    let growth_mib = rss_kib(server.pid()).saturating_sub(baseline) / 1024;
    assert!(
        growth_mib < 16,
        "server RSS grew by {growth_mib} MiB while {streamed} and {streamed2} bytes were streamed"
    );
    // The server is fine for everyone else.
    let mut ok = RawWs::connect(server.addr, &token);
    ok.send_text(r#"{"type":"ping","id":1}"#);
    assert!(ok.text(WAIT).contains(r#""type":"pong""#));
}

/// The reassembled size of a fragmented message is bounded too, and a
/// continuation with no message to continue is a protocol error.
#[test]
fn fragmented_messages_are_bounded_in_total_and_must_start_properly() {
    let server = Server::start("");
    let token = server.token("mallory", &[]);

    // Each frame is under the limit, together they are over it.
    let mut ws = RawWs::connect(server.addr, &token);
    let part = vec![b' '; 40_000];
    ws.send(&raw::frame(raw::TEXT, false, &part));
    ws.send(&raw::frame(raw::CONTINUATION, false, &part));
    assert_eq!(
        ws.close_code(WAIT),
        1009,
        "fragments over the limit in total"
    );

    // Just under the limit in total, the message is read as one command.
    let mut ws = RawWs::connect(server.addr, &token);
    let text = format!(r#"{{"type":"ping","id":7,"pad":"{}"}}"#, " ".repeat(60_000));
    let (first, rest) = text.as_bytes().split_at(30_000);
    ws.send(&raw::frame(raw::TEXT, false, first));
    ws.send(&raw::frame(raw::CONTINUATION, true, rest));
    assert!(ws.text(WAIT).contains(r#""type":"pong","id":7"#));

    let mut ws = RawWs::connect(server.addr, &token);
    ws.send(&raw::frame(raw::CONTINUATION, true, b"{}"));
    assert_eq!(
        ws.close_code(WAIT),
        1002,
        "continuation with no first frame"
    );
}

/// Reads frames until the close frame; counts what came before it.
fn until_close(ws: &mut RawWs) -> (Vec<String>, usize, u16) {
    let (mut texts, mut others) = (Vec::new(), 0);
    loop {
        match ws.read(WAIT) {
            Some(Received::Text(t)) => texts.push(t),
            Some(Received::Other(_)) => others += 1,
            Some(Received::Close(code)) => return (texts, others, code),
            None => panic!(
                "connection still open (or dropped) after {} texts and {others} other frames",
                texts.len()
            ),
        }
    }
}

fn strict_limits() -> Server {
    Server::start_with_env(
        "",
        &[
            ("REALTIME__RATE_LIMITS__COMMANDS_PER_SECOND", "1"),
            ("REALTIME__RATE_LIMITS__COMMANDS_BURST", "5"),
        ],
    )
}

/// WebSocket pings are charged to the command budget: a ping flood gets
/// RATE_LIMITED answers instead of pongs, then close 4008.
#[test]
fn ping_floods_are_rate_limited_and_closed_with_4008() {
    let server = strict_limits();
    let mut ws = RawWs::connect(server.addr, &server.token("mallory", &[]));
    let mut pings = Vec::new();
    for _ in 0..2000 {
        pings.extend(raw::frame(raw::PING, true, b"p"));
    }
    ws.send(&pings);
    let (texts, pongs, code) = until_close(&mut ws);
    assert_eq!(code, 4008, "a ping flood ends with 4008");
    assert!(
        (1..=10).contains(&pongs),
        "only the burst's pings are answered, got {pongs} pongs for 2000 pings"
    );
    assert!(!texts.is_empty(), "the refusals are explained");
    for t in &texts {
        assert!(t.contains(r#""code":"RATE_LIMITED""#), "{t}");
    }
}

/// Binary frames are charged too, before their BAD_REQUEST answer.
#[test]
fn binary_floods_are_rate_limited_and_closed_with_4008() {
    let server = strict_limits();
    let mut ws = RawWs::connect(server.addr, &server.token("mallory", &[]));
    let mut frames = Vec::new();
    for _ in 0..300 {
        frames.extend(raw::frame(raw::BINARY, true, b"\x01\x02"));
    }
    ws.send(&frames);
    let (texts, _, code) = until_close(&mut ws);
    assert_eq!(code, 4008, "a binary flood ends with 4008");
    let bad = texts.iter().filter(|t| t.contains("BAD_REQUEST")).count();
    let limited = texts.iter().filter(|t| t.contains("RATE_LIMITED")).count();
    assert!((1..=10).contains(&bad), "{bad} BAD_REQUEST answers");
    assert!(limited >= 1, "{limited} RATE_LIMITED answers");
    assert_eq!(bad + limited, texts.len(), "{texts:?}");
}

/// `before` may be any integer >= 0; past the largest stored seq it means
/// "from the newest".
#[actix_rt::test]
async fn history_before_beyond_i64_returns_the_newest_messages() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &[]).await;
    alice.join("lobby").await;
    for i in 0..3 {
        alice
            .ok(json!({"type": "message:send", "room": "lobby", "content": format!("m{i}")}))
            .await;
    }
    for before in [json!(1u64 << 63), json!(u64::MAX), json!(4)] {
        let data = alice
            .ok(json!({"type": "history:get", "room": "lobby", "before": before}))
            .await;
        let seqs: Vec<u64> = data["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3], "before = {before}");
    }
    // `since` beyond everything means nothing was missed.
    let mut bob = server.connect("bob", &[]).await;
    let join = bob
        .ok(json!({"type": "room:join", "room": "lobby", "since": u64::MAX}))
        .await;
    assert_eq!(join["missed"], json!([]));
}

/// An `aud` claim may be an array (RFC 7519 §4.1.3) containing the audience.
#[actix_rt::test]
async fn audience_arrays_are_accepted_when_they_contain_the_audience() {
    let server = Server::start_with_env("", &[("REALTIME__AUTH__AUDIENCE", "chat")]);
    let with = |aud: Audience| {
        server.mint(realtime_server::auth::Claims {
            aud: Some(aud),
            ..claims("alice", 600)
        })
    };
    for good in [
        Audience::One("chat".into()),
        Audience::Many(vec!["api".into(), "chat".into()]),
    ] {
        let token = with(good.clone());
        assert!(server.connect_with(&token, &[]).await.is_ok(), "{good:?}");
    }
    for bad in [
        Audience::One("api".into()),
        Audience::Many(vec!["api".into(), "web".into()]),
    ] {
        let (status, body) = server.connect_with(&with(bad), &[]).await.err().unwrap();
        assert_eq!(status, 401);
        assert_eq!(body["message"], "invalid token: wrong audience (aud)");
    }
}

/// A command's id comes back byte for byte, however it is written.
#[test]
fn ids_are_echoed_exactly_as_sent() {
    let server = Server::start("");
    let mut ws = RawWs::connect(server.addr, &server.token("alice", &[]));
    for id in [
        "123456789012345678901234567890",
        "1e2",
        "-0.50",
        "18446744073709551616",
    ] {
        ws.send_text(&format!(r#"{{"type":"ping","id":{id}}}"#));
        let pong = ws.text(WAIT);
        assert!(pong.contains(&format!(r#""id":{id},"#)), "{pong}");
        // an error answer keeps it too
        ws.send_text(&format!(r#"{{"type":"room:join","id":{id}}}"#));
        let error = ws.text(WAIT);
        assert!(error.contains(&format!(r#""id":{id},"#)), "{error}");
        assert!(error.contains("BAD_REQUEST"), "{error}");
    }
}

/// Production refuses a short HS256 secret and a missing key, before it
/// runs a migration or creates the SQLite file.
#[test]
fn production_refuses_weak_or_missing_keys_before_touching_the_database() {
    for (secret, says) in [
        (Some("x"), "is 1 bytes long"),
        (Some("0123456789abcdef0123456789abcde"), "is 31 bytes long"),
        (None, "refusing to start"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("REALTIME__SERVER__ENVIRONMENT", "production")];
        if let Some(secret) = secret {
            env.push(("REALTIME_JWT_SECRET", secret));
        }
        let (ok, stderr) = run_to_exit(&[], &env, dir.path());
        assert!(!ok, "{secret:?} must be refused");
        assert!(stderr.contains(says), "{secret:?}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{secret:?}: created {left:?}");
    }
}

/// User ids with invisible or bidirectional-control characters are refused,
/// in tokens and in admin calls.
#[actix_rt::test]
async fn invisible_characters_in_user_ids_are_refused() {
    let server = Server::start("");
    for sub in [
        "ad\u{200B}min",
        "\u{202E}nimda",
        "bob\u{2066}",
        "\u{FEFF}carol",
    ] {
        let (status, body) = server
            .connect_with(&server.mint(claims(sub, 600)), &[])
            .await
            .err()
            .unwrap_or_else(|| panic!("{sub:?} was accepted"));
        assert_eq!(status, 401, "{sub:?}");
        assert!(
            body["message"].as_str().unwrap().contains("invisible"),
            "{body}"
        );
        let (status, body) = server
            .post(
                "/admin/kick",
                Some(ADMIN_KEY),
                json!({"userId": sub, "reason": "x"}),
            )
            .await;
        assert_eq!(status, 400, "{sub:?}: {body}");
    }
    // Visible non-ASCII ids are fine.
    let client = server
        .connect_with(&server.mint(claims("Zoë", 600)), &[])
        .await
        .unwrap();
    assert_eq!(client.user_id(), "Zoë");
}

/// A request head over the size limit is answered 431 and does not reach
/// the error log (any client could otherwise write to it at will).
#[test]
fn oversized_request_heads_get_431_without_an_error_log_line() {
    use std::io::Read;
    let server = Server::start("");
    for _ in 0..3 {
        let mut socket = std::net::TcpStream::connect(server.addr).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let big = "a".repeat(200_000);
        let request = format!("GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
        // The server may answer and close before it has read everything.
        let _ = socket.write_all(request.as_bytes());
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    let log = server.log();
    assert!(!log.contains("ERROR"), "{log}");
}
