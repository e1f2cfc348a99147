//! Notifications' v2 fields (`docs/protocol.md` 9.2, `POST /admin/notify`):
//! priority, an action, and an expiry, on both backends.

#[macro_use]
mod common;

use common::{Backend, Server, TestDb, ADMIN_KEY};
use serde_json::{json, Value};

on_both_backends!(
    priority_action_and_expiry_are_stored_and_delivered,
    expired_notifications_are_not_delivered_on_connect,
);

/// Runs `sql` on the test database, whichever backend.
fn execute(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Postgres => {
            db.query(sql);
        }
        Backend::Sqlite => {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let path = db.url.strip_prefix("sqlite://").unwrap();
            let mut conn = diesel::SqliteConnection::establish(path).unwrap();
            conn.batch_execute(sql).unwrap();
        }
    }
}

async fn priority_action_and_expiry_are_stored_and_delivered(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut live = server.connect("alice", &[]).await;
    let answer = server
        .admin(
            "/admin/notify",
            json!({"userId": "alice", "title": "Deploy", "priority": "critical",
                   "actionUrl": "https://example.com/deploys/7", "actionText": "Open",
                   "expiresAt": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(answer["delivered"], 1);
    let n = live.expect("notification").await;
    assert_eq!(
        (
            &n["priority"],
            &n["actionUrl"],
            &n["actionText"],
            &n["expiresAt"]
        ),
        (
            &json!("critical"),
            &json!("https://example.com/deploys/7"),
            &json!("Open"),
            &json!("2999-01-01T00:00:00.000Z")
        )
    );
    // Stored with them: a new connection gets the same.
    let mut later = server.connect("alice", &[]).await;
    let again = later.expect("notification").await;
    assert_eq!(again["priority"], "critical");
    assert_eq!(again["actionText"], "Open");
    // Defaults.
    server
        .admin(
            "/admin/notify",
            json!({"userId": "alice", "title": "Plain"}),
        )
        .await;
    let plain = live.expect("notification").await;
    assert_eq!(
        (&plain["priority"], &plain["actionUrl"], &plain["expiresAt"]),
        (&json!("medium"), &Value::Null, &Value::Null)
    );

    let bad = [
        json!({"userId": "alice", "title": "x", "priority": "urgent"}),
        json!({"userId": "alice", "title": "x", "expiresAt": "tomorrow"}),
        json!({"userId": "alice", "title": "x", "expiresAt": "2001-01-01T00:00:00Z"}),
        json!({"userId": "alice", "title": "x", "actionUrl": ""}),
        json!({"userId": "alice", "title": "x", "actionText": "x".repeat(201)}),
    ];
    for body in bad {
        let (status, answer) = server
            .post("/admin/notify", Some(ADMIN_KEY), body.clone())
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["code"], "BAD_REQUEST", "{answer}");
    }
    live.expect_silence().await;
}

async fn expired_notifications_are_not_delivered_on_connect(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let stale = server
        .admin(
            "/admin/notify",
            json!({"userId": "bob", "title": "Sale ends", "expiresAt": "2999-01-01T00:00:00Z"}),
        )
        .await;
    let fresh = server
        .admin(
            "/admin/notify",
            json!({"userId": "bob", "title": "Welcome"}),
        )
        .await;
    // Its expiry passes (set in the database, so the test does not wait).
    execute(
        &db,
        &format!(
            "UPDATE notifications SET expires_at = 1 WHERE notification_id = '{}'",
            stale["notificationId"].as_str().unwrap()
        ),
    );
    let mut bob = server.connect("bob", &[]).await;
    let n = bob.expect("notification").await;
    assert_eq!(n["notificationId"], fresh["notificationId"]);
    bob.expect_silence().await;
}
