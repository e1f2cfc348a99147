//! A browser learns why its handshake was refused: with the token in the
//! query string (and no Authorization header) a refusal is an accepted
//! upgrade closed at once with a 4xxx code and the reason
//! (docs/protocol.md 2.2); header-authenticated clients keep the HTTP status.

mod common;

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// Opens `/ws?{query}`: the close code and reason the server sent at once.
async fn closed_at_once(server: &Server, query: &str) -> (u16, String) {
    let url = format!("ws://{}/ws?{query}", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade is accepted");
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame")
        .expect("not the end")
        .expect("not an error");
    match frame {
        Message::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[actix_rt::test]
async fn bad_expired_and_missing_query_tokens_close_with_4001_and_the_reason() {
    let server = Server::start("");
    let (code, reason) = closed_at_once(&server, "token=garbage").await;
    assert_eq!(
        (code, reason.as_str()),
        (4001, "invalid token: malformed token")
    );
    let token = server.mint(claims("alice", -120));
    let (code, reason) = closed_at_once(&server, &format!("token={token}")).await;
    assert_eq!((code, reason.as_str()), (4001, "token has expired"));
    let (code, reason) = closed_at_once(&server, "token=").await;
    assert_eq!(code, 4001);
    assert!(reason.starts_with("missing token"), "{reason}");
    // With the header, the same refusal is still an HTTP 401.
    let (status, body) = server.connect_with("garbage", &[]).await.err().unwrap();
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    // A good query token is still accepted.
    let ok = server
        .connect_query(&format!("token={}", server.token("bob", &[])))
        .await
        .expect("accepted");
    assert_eq!(ok.user_id(), "bob");
}

#[actix_rt::test]
async fn a_foreign_origin_is_4403_and_too_many_connections_4429_with_retry_after() {
    let server = Server::start_with_env(
        "",
        &[
            ("REALTIME__SERVER__ORIGINS", "http://good.example"),
            ("REALTIME__LIMITS__MAX_CONNECTIONS_PER_USER", "1"),
        ],
    );
    let token = server.token("alice", &[]);
    let (code, reason) = closed_at_once(&server, &format!("token={token}")).await;
    assert_eq!((code, reason.as_str()), (4403, "origin not allowed"));

    let url = format!("ws://{}/ws?token={token}", server.addr);
    let request = |url: &str| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Origin", "http://good.example".parse().unwrap());
        req
    };
    let (mut first, _) = tokio_tungstenite::connect_async(request(&url))
        .await
        .unwrap();
    let hello = first.next().await.unwrap().unwrap();
    assert!(
        hello.to_text().unwrap().contains("\"connected\""),
        "{hello:?}"
    );
    let (mut second, _) = tokio_tungstenite::connect_async(request(&url))
        .await
        .unwrap();
    match second.next().await.unwrap().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4429);
            assert_eq!(
                f.reason.as_ref(),
                "this user already has 1 connections, the most allowed; retryAfterMs=1000"
            );
        }
        other => panic!("expected a close, got {other:?}"),
    }
}
