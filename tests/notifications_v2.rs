//! Notifications' v2 fields (`docs/protocol.md` 9.2, `POST /admin/notify`):
//! priority, an action, and an expiry; `notification:read` of several or
//! all, synced to the user's other connections; `notification:list`; on
//! both backends.

#[macro_use]
mod common;

use common::{Backend, Server, TestDb, ADMIN_KEY};
use serde_json::{json, Value};

on_both_backends!(
    priority_action_and_expiry_are_stored_and_delivered,
    expired_notifications_are_not_delivered_on_connect,
    reading_several_or_all_is_synced_to_the_other_connections,
    notification_list_pages_newest_first_without_expired_ones,
);

/// Runs `sql` on the test database, whichever backend.
fn execute(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Postgres => {
            db.query(sql);
        }
        Backend::Sqlite => {
            use diesel::connection::SimpleConnection;
            db.sqlite().batch_execute(sql).unwrap();
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

async fn reading_several_or_all_is_synced_to_the_other_connections(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut ids = Vec::new();
    for title in ["a", "b", "c", "d"] {
        let n = server
            .admin("/admin/notify", json!({"userId": "alice", "title": title}))
            .await;
        ids.push(n["notificationId"].as_str().unwrap().to_string());
    }
    let mut phone = server.connect("alice", &[]).await;
    let mut laptop = server.connect("alice", &[]).await;
    for c in [&mut phone, &mut laptop] {
        for _ in 0..4 {
            c.expect("notification").await;
        }
    }
    let other = server
        .admin(
            "/admin/notify",
            json!({"userId": "bob", "title": "not hers"}),
        )
        .await;

    // Several: those that are hers; others' and unknown ids are left alone.
    let some = json!({"type": "notification:read",
        "notificationIds": [ids[0], ids[1], "nope", other["notificationId"]]});
    assert_eq!(phone.ok(some).await, json!({}));
    let synced = laptop.expect("notification:read").await;
    let mut got: Vec<&str> = synced["notificationIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    got.sort();
    let mut want = vec![ids[0].as_str(), ids[1].as_str()];
    want.sort();
    assert_eq!(got, want);
    assert!(synced.get("all").is_none(), "{synced}");
    phone.expect_silence().await;

    // One, as before.
    let one = json!({"type": "notification:read", "notificationId": ids[2]});
    assert_eq!(laptop.ok(one).await, json!({}));
    let synced = phone.expect("notification:read").await;
    assert_eq!(synced["notificationIds"], json!([ids[2]]));

    // A new connection gets only the one left unread.
    let mut tablet = server.connect("alice", &[]).await;
    assert_eq!(
        tablet.expect("notification").await["notificationId"],
        ids[3].as_str()
    );
    tablet.expect_silence().await;

    // All.
    let all = json!({"type": "notification:read", "all": true});
    assert_eq!(tablet.ok(all).await, json!({}));
    for c in [&mut phone, &mut laptop] {
        let synced = c.expect("notification:read").await;
        assert_eq!(synced, json!({"type": "notification:read", "all": true}));
    }
    let mut desk = server.connect("alice", &[]).await;
    desk.expect_silence().await;
    // Bob's stays unread.
    let mut bob = server.connect("bob", &[]).await;
    assert_eq!(bob.expect("notification").await["title"], "not hers");

    for bad in [
        json!({"type": "notification:read"}),
        json!({"type": "notification:read", "notificationIds": []}),
        json!({"type": "notification:read", "all": false}),
    ] {
        assert_eq!(desk.err(bad).await, "BAD_REQUEST");
    }
}

/// The `notificationId`s of a `notification:list` answer.
fn listed(page: &Value) -> Vec<String> {
    page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notificationId"].as_str().unwrap().to_string())
        .collect()
}

async fn notification_list_pages_newest_first_without_expired_ones(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut ids = Vec::new();
    for title in ["n1", "n2", "n3", "n4", "expired"] {
        let n = server
            .admin("/admin/notify", json!({"userId": "alice", "title": title}))
            .await;
        ids.push(n["notificationId"].as_str().unwrap().to_string());
    }
    // Creation times set in the database, so the order is known: n2 and n3
    // at the same instant (the id breaks the tie).
    for (id, at) in ids.iter().zip([1000, 2000, 2000, 3000, 4000]) {
        execute(
            &db,
            &format!("UPDATE notifications SET created_at = {at} WHERE notification_id = '{id}'"),
        );
    }
    execute(
        &db,
        &format!(
            "UPDATE notifications SET expires_at = 1 WHERE notification_id = '{}'",
            ids[4]
        ),
    );
    let (tied_high, tied_low) = if ids[1] > ids[2] {
        (ids[1].clone(), ids[2].clone())
    } else {
        (ids[2].clone(), ids[1].clone())
    };
    server
        .admin(
            "/admin/notify",
            json!({"userId": "bob", "title": "not hers"}),
        )
        .await;
    let mut alice = server.connect("alice", &[]).await;
    for _ in 0..4 {
        alice.expect("notification").await;
    }
    alice
        .ok(json!({"type": "notification:read", "notificationId": tied_low}))
        .await;

    // Everything, newest first, expired left out.
    let all = alice.ok(json!({"type": "notification:list"})).await;
    assert_eq!(
        listed(&all),
        [&ids[3], &tied_high, &tied_low, &ids[0]].map(String::clone)
    );
    assert_eq!(all["next"], Value::Null);
    let first = &all["notifications"][0];
    assert_eq!(
        (&first["title"], &first["readAt"]),
        (&json!("n4"), &Value::Null)
    );
    assert_eq!(first["createdAt"], "1970-01-01T00:00:03.000Z");
    assert_eq!(first["priority"], "medium");
    assert!(all["notifications"][2]["readAt"].is_string(), "{all}");

    // Pages of two: the cursor passes the tie.
    let page = alice
        .ok(json!({"type": "notification:list", "limit": 2}))
        .await;
    assert_eq!(listed(&page), [ids[3].clone(), tied_high.clone()]);
    assert_eq!(page["next"], tied_high.as_str());
    let rest = alice
        .ok(json!({"type": "notification:list", "limit": 2, "before": page["next"]}))
        .await;
    assert_eq!(listed(&rest), [tied_low.clone(), ids[0].clone()]);
    assert_eq!(rest["next"], Value::Null);

    // Unread only.
    let unread = alice
        .ok(json!({"type": "notification:list", "unreadOnly": true, "limit": 1}))
        .await;
    assert_eq!(listed(&unread), [ids[3].clone()]);
    let more = alice
        .ok(json!({"type": "notification:list", "unreadOnly": true, "before": unread["next"]}))
        .await;
    assert_eq!(listed(&more), [tied_high.clone(), ids[0].clone()]);

    // Refusals, and the connection keeps working.
    let bobs = {
        let mut bob = server.connect("bob", &[]).await;
        let n = bob.expect("notification").await;
        n["notificationId"].as_str().unwrap().to_string()
    };
    for bad in [
        json!({"type": "notification:list", "before": "no-such-id"}),
        json!({"type": "notification:list", "before": bobs}),
        json!({"type": "notification:list", "before": ""}),
        json!({"type": "notification:list", "before": 3}),
        json!({"type": "notification:list", "before": -1}),
        json!({"type": "notification:list", "limit": 0}),
        json!({"type": "notification:list", "limit": 101}),
        json!({"type": "notification:list", "unreadOnly": "yes"}),
        json!({"type": "history:get", "room": "user:alice", "before": "abc"}),
    ] {
        assert_eq!(alice.err(bad.clone()).await, "BAD_REQUEST", "{bad}");
    }
    let max = alice
        .ok(json!({"type": "notification:list", "limit": 100}))
        .await;
    assert_eq!(listed(&max).len(), 4);
    // Bob lists only his.
    let mut bob = server.connect("bob", &[]).await;
    bob.expect("notification").await;
    let his = bob.ok(json!({"type": "notification:list"})).await;
    assert_eq!(his["notifications"].as_array().unwrap().len(), 1);
}
