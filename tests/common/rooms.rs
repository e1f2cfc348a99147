//! Helpers of the managed-room tests (`tests/managed_rooms*.rs`).

use serde_json::{json, Value};

use super::{Client, Server};

/// An error frame's code and message for `command`.
pub async fn refused(client: &mut Client, command: Value) -> (String, String) {
    let answer = client.request(command.clone()).await;
    assert_eq!(answer["type"], "error", "{command} got {answer}");
    (
        answer["code"].as_str().unwrap().to_string(),
        answer["message"].as_str().unwrap().to_string(),
    )
}

/// Asserts `command` is refused with FORBIDDEN and a message containing `why`.
pub async fn forbidden(client: &mut Client, command: Value, why: &str) {
    let (code, message) = refused(client, command).await;
    assert_eq!(code, "FORBIDDEN", "{message}");
    assert!(message.contains(why), "{message:?} should say {why:?}");
}

pub async fn send(client: &mut Client, room: &str, content: &str) -> Value {
    client
        .request(json!({"type": "message:send", "room": room, "content": content}))
        .await
}

/// Reads frames until one of type `ty`, failing on any `message:new`
/// before it: what must not have been delivered would come first.
pub async fn no_message_before(client: &mut Client, ty: &str) -> Value {
    loop {
        let frame = client.next().await;
        assert_ne!(
            frame["type"], "message:new",
            "delivered after leaving: {frame}"
        );
        if frame["type"] == ty {
            return frame;
        }
    }
}

/// Reads frames until one of type `ty` (others skipped).
pub async fn until(client: &mut Client, ty: &str) -> Value {
    loop {
        let frame = client.next().await;
        if frame["type"] == ty {
            return frame;
        }
    }
}

/// A fence for `user`: a notification to their personal room. Everything
/// the server sent them before it arrives before it.
pub async fn fence(server: &Server, user: &str) {
    server
        .admin("/admin/notify", json!({"userId": user, "title": "fence"}))
        .await;
}

pub async fn create(owner: &mut Client, room: &str, kind: &str, visibility: &str) -> Value {
    owner
        .ok(json!({"type": "room:create", "room": room, "roomType": kind, "visibility": visibility}))
        .await
}

pub async fn add(client: &mut Client, room: &str, user: &str, role: &str) -> Value {
    client
        .ok(json!({"type": "member:add", "room": room, "userId": user, "role": role}))
        .await
}

/// Sends `n` messages to `room` at once (no waiting between them) and
/// answers how many were refused RATE_LIMITED (each with retryAfterMs);
/// every other answer must be a reply.
pub async fn burst(client: &mut Client, room: &str, n: usize) -> usize {
    for i in 0..n {
        client
            .send(json!({"type": "message:send", "room": room, "content": "x", "id": format!("burst{i}")}))
            .await;
    }
    let (mut answered, mut limited) = (0, 0);
    while answered < n {
        let frame = client.next().await;
        if !frame["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("burst"))
        {
            continue;
        }
        answered += 1;
        if frame["type"] == "error" {
            assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
            assert!(frame["retryAfterMs"].as_u64().unwrap() >= 1, "{frame}");
            limited += 1;
        } else {
            assert_eq!(frame["type"], "reply", "{frame}");
        }
    }
    limited
}
