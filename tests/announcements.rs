//! Announcements (`docs/protocol.md` §15.2), black-box on both backends and
//! two nodes sharing Redis: stored, targeted by the token's `roles` claim,
//! delivered at once on every node and, while active, right after
//! `connected` to later connections; listed and ended through the admin API.

#[macro_use]
mod common;

use std::collections::HashSet;

use common::{claims, two_nodes, Backend, Client, Server, TestDb, ADMIN_KEY};
use realtime_server::auth::Claims;
use serde_json::{json, Value};

on_both_backends!(
    announcements_reach_the_targeted_connections_on_every_node,
    later_connections_get_the_active_ones_after_connected,
    bad_announcements_are_refused_and_change_nothing,
    a_scheduled_one_reaches_open_connections_when_it_starts,
    a_node_started_later_sends_a_scheduled_one_when_it_starts,
);

/// On PostgreSQL, two nodes sharing `db` and a Redis prefix of their own;
/// on SQLite (one node only: nodes must share PostgreSQL), one node, the
/// second `None`. Use `other(&nodes)` for "the other node".
async fn nodes(db: &TestDb) -> (Server, Option<Server>) {
    if db.backend == Backend::Sqlite {
        return (Server::start_on(db, ""), None);
    }
    let (_, a, b) = two_nodes(db).await;
    (a, Some(b))
}

fn other(nodes: &(Server, Option<Server>)) -> &Server {
    nodes.1.as_ref().unwrap_or(&nodes.0)
}

/// A connection and the announcements it got. An announcement posted while
/// a connection opens can come twice (live, and read after `connected`):
/// repeats are dropped by `announcementId`, as docs/protocol.md §2.3 tells
/// clients to.
struct Watched {
    client: Client,
    seen: HashSet<String>,
}

impl Watched {
    /// The next announcement not seen before (the object under `data`).
    async fn next(&mut self) -> Value {
        loop {
            let event = self.client.expect("announcement").await;
            let id = event["data"]["announcementId"]
                .as_str()
                .unwrap()
                .to_string();
            if self.seen.insert(id) {
                return event["data"].clone();
            }
        }
    }

    async fn silent(&mut self) {
        self.client.expect_silence().await;
    }
}

/// A connection of `user` whose token's `roles` claim is `roles`.
async fn with_roles(node: &Server, user: &str, roles: &[&str]) -> Watched {
    let token = node.mint(Claims {
        roles: Some(roles.iter().map(|r| r.to_string()).collect()),
        ..claims(user, 3600)
    });
    let client = node.connect_with(&token, &[]).await.expect("connect");
    Watched {
        client,
        seen: HashSet::new(),
    }
}

async fn announce(node: &Server, body: Value) -> Value {
    let (status, answer) = node
        .post("/admin/announcements", Some(ADMIN_KEY), body)
        .await;
    assert_eq!(status, 201, "{answer}");
    answer
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
        let got = client.next().await;
        assert_eq!(
            got,
            json!({"announcementId": id, "title": "Staff meeting", "message": "at 3",
                   "type": "feature", "startsAt": null, "endsAt": null})
        );
    }
    plain_b.silent().await;
    beta_a.silent().await;

    // Either of two roles; then everyone, posted on the other node.
    let either = announce(
        b,
        json!({"title": "t", "message": "m", "type": "warning", "targetRoles": ["beta", "ops"]}),
    )
    .await;
    assert_eq!(either["delivered"], 2, "{either}");
    assert_eq!(staff_b.next().await["type"], "warning");
    assert_eq!(beta_a.next().await["type"], "warning");
    let all = announce(
        b,
        json!({"title": "Maintenance", "message": "tonight", "type": "maintenance",
               "endsAt": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(all["delivered"], 4, "{all}");
    for client in [&mut staff_a, &mut staff_b, &mut plain_b, &mut beta_a] {
        let got = client.next().await;
        assert_eq!(got["announcementId"], all["announcementId"]);
        assert_eq!(got["endsAt"], "2999-01-01T00:00:00.000Z");
        client.silent().await;
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
    let got = plain.next().await;
    assert_eq!(got["announcementId"], everyone["announcementId"]);
    assert_eq!(got["startsAt"], "2001-01-01T00:00:00.000Z");
    plain.silent().await;
    let mut oncall = with_roles(a, "olga", &["ops"]).await;
    assert_eq!(
        oncall.next().await["announcementId"],
        everyone["announcementId"]
    );
    assert_eq!(oncall.next().await["announcementId"], ops["announcementId"]);
    oncall.silent().await;
    // Commands work as usual after them.
    oncall.client.ok(json!({"type": "notification:list"})).await;

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
    last.silent().await;

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
    live.silent().await;
    let listing = server.admin_get("/admin/announcements").await;
    assert_eq!(listing["announcements"], json!([]));
    // And a good one still goes through.
    assert_eq!(announce(&server, ok).await["delivered"], 1);
    assert_eq!(live.next().await["title"], "t");
}

/// RFC 3339 of `secs` seconds from now.
fn in_secs(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn a_scheduled_one_reaches_open_connections_when_it_starts(backend: Backend) {
    let db = TestDb::new(backend);
    let nodes = nodes(&db).await;
    let (a, b) = (&nodes.0, other(&nodes));
    let mut on_a = with_roles(a, "sam", &["staff"]).await;
    let mut on_b = with_roles(b, "sue", &["staff"]).await;
    let mut other_role = with_roles(b, "pat", &["beta"]).await;
    // Ended before it starts: never sent.
    let cancelled = announce(
        a,
        json!({"title": "Cancelled", "message": "m", "type": "maintenance", "startsAt": in_secs(2)}),
    )
    .await;
    assert_eq!(cancelled["delivered"], 0);
    let id = cancelled["announcementId"].as_str().unwrap();
    let (status, _) = b
        .delete(&format!("/admin/announcements/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(status, 200);
    // Starts a little later: every open connection it targets gets it then,
    // on both nodes (the tests waits for the event, it does not time it).
    let later = announce(
        b,
        json!({"title": "Starting", "message": "now", "type": "feature",
               "targetRoles": ["staff"], "startsAt": in_secs(3)}),
    )
    .await;
    assert_eq!(later["delivered"], 0);
    for client in [&mut on_a, &mut on_b] {
        let got = client.next().await;
        assert_eq!(got["announcementId"], later["announcementId"], "{got}");
        client.silent().await;
    }
    other_role.silent().await;
}

async fn a_node_started_later_sends_a_scheduled_one_when_it_starts(backend: Backend) {
    let db = TestDb::new(backend);
    let mut first = Server::start_on(&db, "");
    let starts = in_secs(8);
    let made = announce(
        &first,
        json!({"title": "After the restart", "message": "m", "type": "feature", "startsAt": starts}),
    )
    .await;
    first.terminate();
    assert!(first
        .wait_exit(std::time::Duration::from_secs(20))
        .success());
    // The new process holds its own timer, loaded at start-up.
    let server = Server::start_on(&db, "");
    let mut open = with_roles(&server, "pat", &[]).await;
    let opened = open.client.connected["serverTime"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        opened < starts,
        "the machine is too slow for this test: connected at {opened}, the announcement starts at {starts}"
    );
    let got = open.next().await;
    assert_eq!(got["announcementId"], made["announcementId"]);
    open.silent().await;
}
