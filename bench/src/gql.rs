//! `gqlfanout`'s subscribers: a connection to `/graphql` over
//! graphql-transport-ws, subscribed to `messageAdded(room)`.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

use super::{bound_stream, token, Opts, Ws};

/// `/graphql` beside the `/ws` of `url`.
pub fn graphql_url(url: &str) -> String {
    match url.strip_suffix("/ws") {
        Some(base) => format!("{base}/graphql"),
        None => url.to_string(),
    }
}

/// Connects as `user` (subscriber `n`), waits for `connection_ack` and
/// subscribes to `room`'s new messages (their `content` only, which carries
/// the stamp).
pub async fn subscribe(o: &Opts, user: &str, n: usize, room: &str) -> Result<Ws, String> {
    let url = graphql_url(&o.url);
    let stream = bound_stream(&url, n, o.sources).await?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .map_err(|e| e.to_string())?;
    let init = json!({"type": "connection_init", "payload": {"token": token(&o.secret, user)}});
    ws.send(Message::Text(init.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.contains("\"connection_ack\"") => {}
        other => return Err(format!("expected connection_ack, got {other:?}")),
    }
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription($room: String!) { messageAdded(room: $room) { content } }",
        "variables": {"room": room}}});
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Asks `presence:get` on the publisher's connection until `room` has
/// `members` users: graphql-transport-ws does not answer `subscribe`, so
/// the run starts only once every subscriber has joined the room.
pub async fn wait_for_members(ws: &mut Ws, room: &str, members: u64) -> Result<(), String> {
    for attempt in 0..600u64 {
        let id = 1_000_000 + attempt;
        let ask = json!({"type": "presence:get", "room": room, "limit": 1, "id": id});
        ws.send(Message::Text(ask.to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
        let needle = format!("\"id\":{id},");
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains(&needle) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&t).map_err(|e| e.to_string())?;
                    if v["data"]["memberCount"].as_u64().unwrap_or(0) >= members {
                        return Ok(());
                    }
                    break;
                }
                Some(Ok(_)) => {}
                other => return Err(format!("presence:get: {other:?}")),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(format!("{room} never had {members} members"))
}
