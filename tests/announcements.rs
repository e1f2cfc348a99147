//! Announcements (`docs/protocol.md` §15.2), black-box on both backends and
//! two nodes sharing Redis: stored, targeted by the token's `roles` claim,
//! delivered at once on every node and, while active, right after
//! `connected` to later connections; listed and ended through the admin API.

#[macro_use]
mod common;

use common::{
    claims, redis_prefix, redis_url, start_node, Backend, Client, Server, TestDb, ADMIN_KEY,
};
use realtime_server::auth::Claims;
use serde_json::{json, Value};

on_both_backends!(
    announcements_reach_the_targeted_connections_on_every_node,
    later_connections_get_the_active_ones_after_connected,
    bad_announcements_are_refused_and_change_nothing,
);

/// On PostgreSQL, two nodes sharing `db` and a Redis prefix of their own;
/// on SQLite (one node only: nodes must share PostgreSQL), one node, the
/// second `None`. Use `other(&nodes)` for "the other node".
async fn nodes(db: &TestDb) -> (Server, Option<Server>) {
    if db.backend == Backend::Sqlite {
        return (Server::start_on(db, ""), None);
    }
    let prefix = redis_prefix();
    let a = start_node(db, redis_url(), &prefix, "node-a", &[]);
    a.wait_ready().await;
    let b = start_node(db, redis_url(), &prefix, "node-b", &[]);
    b.wait_ready().await;
    (a, Some(b))
}

fn other(nodes: &(Server, Option<Server>)) -> &Server {
    nodes.1.as_ref().unwrap_or(&nodes.0)
}

/// A connection of `user` whose token's `roles` claim is `roles`.
async fn with_roles(node: &Server, user: &str, roles: &[&str]) -> Client {
    let token = node.mint(Claims {
        roles: Some(roles.iter().map(|r| r.to_string()).collect()),
        ..claims(user, 3600)
    });
    node.connect_with(&token, &[]).await.expect("connect")
}

async fn announce(node: &Server, body: Value) -> Value {
    let (status, answer) = node
        .post("/admin/announcements", Some(ADMIN_KEY), body)
        .await;
    assert_eq!(status, 201, "{answer}");
    answer
}

/// The announcement object of an `announcement` event.
async fn announcement(client: &mut Client) -> Value {
    let event = client.expect("announcement").await;
    event["data"].clone()
}

async fn announcements_reach_the_targeted_connections_on_every_node(backend: Backend) {
    let db = TestDb::new(backend);
    let nodes = nodes(&db).await;
    let (a, b) = (&nodes.0, other(&nodes));
    let mut staff_a = with_roles(a, "sam", &["staff"]).await;
    let mut staff_b = with_roles(b, "sue", &["beta", "staff"]).await;
    let mut plain_b = with_roles(b, "pat", &[]).await;
    let mut beta_a = with_roles(a, "bea", &["beta"]).await;

    let answer = announce(
        a,
        json!({"title": "Staff meeting", "message": "at 3", "type": "feature",
               "targetRoles": ["staff"]}),
    )
    .await;
    assert_eq!(answer["delivered"], 2, "{answer}");
    let id = answer["announcementId"].as_str().unwrap();
    for client in [&mut staff_a, &mut staff_b] {
        let got = announcement(client).await;
        assert_eq!(
            got,
            json!({"announcementId": id, "title": "Staff meeting", "message": "at 3",
                   "type": "feature", "startsAt": null, "endsAt": null})
        );
    }
    plain_b.expect_silence().await;
    beta_a.expect_silence().await;

    // Either of two roles; then everyone, posted on the other node.
    let either = announce(
        b,
        json!({"title": "t", "message": "m", "type": "warning", "targetRoles": ["beta", "ops"]}),
    )
    .await;
    assert_eq!(either["delivered"], 2, "{either}");
    assert_eq!(announcement(&mut staff_b).await["type"], "warning");
    assert_eq!(announcement(&mut beta_a).await["type"], "warning");
    let all = announce(
        b,
        json!({"title": "Maintenance", "message": "tonight", "type": "maintenance",
               "endsAt": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(all["delivered"], 4, "{all}");
    for client in [&mut staff_a, &mut staff_b, &mut plain_b, &mut beta_a] {
        let got = announcement(client).await;
        assert_eq!(got["announcementId"], all["announcementId"]);
        assert_eq!(got["endsAt"], "2999-01-01T00:00:00.000Z");
        client.expect_silence().await;
    }
}

async fn later_connections_get_the_active_ones_after_connected(backend: Backend) {
    let db = TestDb::new(backend);
    let nodes = nodes(&db).await;
    let (a, b) = (&nodes.0, other(&nodes));
    let everyone = announce(
        a,
        json!({"title": "Hello", "message": "welcome", "type": "feature",
               "startsAt": "2001-01-01T00:00:00Z"}),
    )
    .await;
    let later = announce(
        a,
        json!({"title": "Soon", "message": "not yet", "type": "maintenance",
               "startsAt": "2998-01-01T00:00:00Z", "endsAt": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(later["delivered"], 0, "{later}");
    let ops = announce(
        b,
        json!({"title": "Ops", "message": "pager rota", "type": "warning", "targetRoles": ["ops"]}),
    )
    .await;
    let ended = announce(
        a,
        json!({"title": "Gone", "message": "ended", "type": "feature"}),
    )
    .await;
    let ended_id = ended["announcementId"].as_str().unwrap();
    // Ended on the other node than it was made on.
    let (status, gone) = b
        .delete(&format!("/admin/announcements/{ended_id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(
        (&gone["active"], gone["endedAt"].is_string()),
        (&json!(false), true)
    );

    // Right after `connected`, oldest first, on either node.
    let mut plain = with_roles(b, "pat", &[]).await;
    let got = announcement(&mut plain).await;
    assert_eq!(got["announcementId"], everyone["announcementId"]);
    assert_eq!(got["startsAt"], "2001-01-01T00:00:00.000Z");
    plain.expect_silence().await;
    let mut oncall = with_roles(a, "olga", &["ops"]).await;
    assert_eq!(
        announcement(&mut oncall).await["announcementId"],
        everyone["announcementId"]
    );
    assert_eq!(
        announcement(&mut oncall).await["announcementId"],
        ops["announcementId"]
    );
    oncall.expect_silence().await;
    // Commands work as usual after them.
    oncall.ok(json!({"type": "notification:list"})).await;

    // Listed newest first, with what only admins see.
    let listing = a.admin_get("/admin/announcements").await;
    let list = listing["announcements"].as_array().unwrap();
    let ids: Vec<&Value> = list.iter().map(|x| &x["announcementId"]).collect();
    assert_eq!(
        ids,
        [
            &ended["announcementId"],
            &ops["announcementId"],
            &later["announcementId"],
            &everyone["announcementId"]
        ]
    );
    let active: Vec<bool> = list
        .iter()
        .map(|x| x["active"].as_bool().unwrap())
        .collect();
    assert_eq!(active, [false, true, false, true]);
    assert_eq!(list[1]["targetRoles"], json!(["ops"]));
    assert_eq!(list[0]["endedAt"], gone["endedAt"]);
    assert_eq!(list[3]["endedAt"], Value::Null);

    // Ending twice keeps the first end; an unknown one is 404.
    let (status, again) = a
        .delete(&format!("/admin/announcements/{ended_id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!((status, &again["endedAt"]), (200, &gone["endedAt"]));
    let (status, missing) = a
        .delete("/admin/announcements/no-such-one", Some(ADMIN_KEY))
        .await;
    assert_eq!((status, &missing["code"]), (404, &json!("NOT_FOUND")));

    // Ending the one everyone got: later connections no longer get it.
    let id = everyone["announcementId"].as_str().unwrap();
    let (status, _) = a
        .delete(&format!("/admin/announcements/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(status, 200);
    let mut last = with_roles(b, "pat", &[]).await;
    last.expect_silence().await;

    // Not for anyone else than admins.
    let user = a.token("pat", &[]);
    let (status, _) = a.get("/admin/announcements", Some(&user)).await;
    assert_eq!(status, 403);
}

async fn bad_announcements_are_refused_and_change_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let mut live = with_roles(&server, "pat", &["staff"]).await;
    let ok = json!({"title": "t", "message": "m", "type": "feature"});
    let with = |k: &str, v: Value| {
        let mut body = ok.clone();
        body[k] = v;
        body
    };
    let bad = [
        with("type", json!("party")),
        with("type", Value::Null),
        with("title", json!("")),
        with("title", json!("x".repeat(201))),
        with("message", json!("x".repeat(4001))),
        with("message", json!("a\u{0}b")),
        with("targetRoles", json!("staff")),
        with("targetRoles", json!([""])),
        with("targetRoles", json!(vec!["r"; 33])),
        with("startsAt", json!("tomorrow")),
        with("endsAt", json!("2001-01-01T00:00:00Z")),
        with("startsAt", json!("2999-01-02T00:00:00Z"))
            .as_object()
            .map(|o| {
                let mut b = Value::Object(o.clone());
                b["endsAt"] = json!("2999-01-01T00:00:00Z");
                b
            })
            .unwrap(),
        with("audience", json!("all")),
        json!({"title": "t", "type": "feature"}),
    ];
    for body in bad {
        let (status, answer) = server
            .post("/admin/announcements", Some(ADMIN_KEY), body.clone())
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["code"], "BAD_REQUEST", "{answer}");
        assert!(answer["message"].as_str().unwrap().len() > 10, "{answer}");
    }
    let (status, _) = server.post("/admin/announcements", None, ok.clone()).await;
    assert_eq!(status, 401);
    live.expect_silence().await;
    let listing = server.admin_get("/admin/announcements").await;
    assert_eq!(listing["announcements"], json!([]));
    // And a good one still goes through.
    assert_eq!(announce(&server, ok).await["delivered"], 1);
    assert_eq!(announcement(&mut live).await["title"], "t");
}
