//! `/graphql` (docs/graphql.md): over HTTP from Rust, on both backends;
//! with the `graphql-ws` client in Node (tests/graphql/) against two nodes
//! sharing Redis; and the schema file checked against the code.

#[macro_use]
mod common;

use std::path::Path;

use common::{claims, npm, scaled, two_nodes, Backend, Server, TestDb, ADMIN_KEY};
use serde_json::{json, Value};

/// `docs/graphql.graphql` is the schema the code serves. To update it after
/// changing the schema: `UPDATE_GRAPHQL_SCHEMA=1 cargo test --test graphql schema`.
#[test]
fn the_schema_file_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/graphql.graphql");
    let sdl = realtime_server::graphql::sdl();
    if std::env::var_os("UPDATE_GRAPHQL_SCHEMA").is_some() {
        std::fs::write(&path, &sdl).expect("write docs/graphql.graphql");
    }
    let file = std::fs::read_to_string(&path).expect("docs/graphql.graphql");
    assert!(
        file == sdl,
        "docs/graphql.graphql differs from the code's schema: \
         run `UPDATE_GRAPHQL_SCHEMA=1 cargo test --test graphql schema` and commit it"
    );
    for name in [
        "history(",
        "presence(",
        "rooms:",
        "notifications(",
        "sendMessage(",
        "editMessage(",
        "deleteMessage(",
        "markRead(",
        "readNotifications(",
        "messageAdded(",
        "messageChanged(",
        "presenceChanged(",
        "typing(",
        "notificationReceived:",
        "roomUpdated(",
    ] {
        assert!(sdl.contains(name), "the schema has no {name}");
    }
}

/// POSTs a GraphQL request with `token` (none: no header).
async fn gql(server: &Server, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
    server
        .post(
            "/graphql",
            token,
            json!({"query": query, "variables": variables}),
        )
        .await
}

/// The `data` of a request that must succeed.
async fn data(server: &Server, token: &str, query: &str, variables: Value) -> Value {
    let (status, body) = gql(server, Some(token), query, variables).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

/// The first error's code of a request that must fail.
async fn error_code(server: &Server, token: &str, query: &str, variables: Value) -> String {
    let (status, body) = gql(server, Some(token), query, variables).await;
    assert_eq!(status, 200, "{body}");
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {body}"))
        .to_string()
}

/// The next event of type `ty`, past presence events: an HTTP request that
/// sends joins the room for its duration, so a user with no other
/// connection there is seen to join and leave (docs/graphql.md).
async fn next_of(client: &mut common::Client, ty: &str) -> Value {
    loop {
        let f = client.next().await;
        if f["type"] == ty {
            return f;
        }
        assert!(
            f["type"] == "user:joined" || f["type"] == "user:left",
            "expected {ty}, got {f}"
        );
    }
}

async fn queries_and_mutations_over_http(backend: Backend) {
    let db = TestDb::new(backend);
    let server = Server::start_on(&db, "");
    let alice = server.token("alice", &["team:*"]);
    let mut bob = server.connect("bob", &["team:*"]).await;
    bob.join("team:1").await;

    // sendMessage: the /ws member gets it as any message.
    let sent = data(
        &server,
        &alice,
        r#"mutation { sendMessage(room: "team:1", content: "hi", clientMsgId: "c1", metadata: {a: [1]}) { messageId seq timestamp } }"#,
        json!({}),
    )
    .await["sendMessage"]
        .clone();
    let id = sent["messageId"].as_str().unwrap().to_string();
    let frame = next_of(&mut bob, "message:new").await;
    assert_eq!(
        (&frame["messageId"], &frame["userId"]),
        (&json!(id), &json!("alice"))
    );
    assert_eq!(frame["metadata"], json!({"a": [1]}));

    // The same clientMsgId is the same message.
    let again = data(
        &server,
        &alice,
        r#"mutation { sendMessage(room: "team:1", content: "hi", clientMsgId: "c1") { messageId } }"#,
        json!({}),
    )
    .await;
    assert_eq!(again["sendMessage"]["messageId"], json!(id));

    let history = data(
        &server,
        &alice,
        "query($room: String!) { history(room: $room, limit: 10) { messageId seq userId content kind metadata deleted } }",
        json!({"room": "team:1"}),
    )
    .await;
    let list = history["history"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{history}");
    assert_eq!(list[0]["content"], "hi");
    assert_eq!(list[0]["kind"], "text");

    let edited = data(
        &server,
        &alice,
        "mutation($id: String!) { editMessage(room: \"team:1\", messageId: $id, content: \"hello\") { content editedAt } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(edited["editMessage"]["content"], "hello");
    assert!(edited["editMessage"]["editedAt"].is_string());
    assert_eq!(
        next_of(&mut bob, "message:updated").await["content"],
        "hello"
    );
    // Bob is not the author: FORBIDDEN, as over /ws.
    let bobs = server.token("bob", &["team:*"]);
    let q = "mutation($id: String!) { editMessage(room: \"team:1\", messageId: $id, content: \"x\") { content } }";
    assert_eq!(
        error_code(&server, &bobs, q, json!({"id": id})).await,
        "FORBIDDEN"
    );

    let read = data(
        &server,
        &alice,
        r#"mutation { markRead(room: "team:1", seq: 1) }"#,
        json!({}),
    )
    .await;
    assert_eq!(read["markRead"], 1);

    let deleted = data(
        &server,
        &alice,
        "mutation($id: String!) { deleteMessage(room: \"team:1\", messageId: $id) { deleted content } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        deleted["deleteMessage"],
        json!({"deleted": true, "content": ""})
    );
    assert_eq!(
        next_of(&mut bob, "message:deleted").await["deletedBy"],
        "alice"
    );

    let presence = data(
        &server,
        &alice,
        r#"query { presence(room: "team:1") { memberCount members { userId status } next } }"#,
        json!({}),
    )
    .await;
    let members = &presence["presence"]["members"];
    assert!(
        members
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["userId"] == "bob"),
        "{presence}"
    );

    let rooms = data(&server, &alice, "query { rooms }", json!({})).await;
    assert!(
        rooms["rooms"].is_object() || rooms["rooms"].is_array(),
        "{rooms}"
    );

    // Notifications (`notification:list`): read and unread listed, newest
    // first, a page at a time; `unreadOnly` drops the read ones.
    for title in ["one", "two", "three"] {
        let (status, body) = server
            .post(
                "/admin/notify",
                Some(ADMIN_KEY),
                json!({"userId": "alice", "title": title}),
            )
            .await;
        assert!(status < 300, "{body}");
    }
    let q = "query($u: Boolean, $b: String, $l: Int) { notifications(unreadOnly: $u, \
             before: $b, limit: $l) { notifications { notificationId title kind data \
             createdAt readAt } next } }";
    let all = data(&server, &alice, q, json!({})).await["notifications"].clone();
    let titles = |page: &Value| -> Vec<String> {
        page["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(titles(&all), ["three", "two", "one"], "{all}");
    assert_eq!(all["next"], Value::Null, "{all}");
    let newest = all["notifications"][0]["notificationId"].clone();
    let read = data(
        &server,
        &alice,
        "mutation($ids: [String!]) { readNotifications(ids: $ids) }",
        json!({"ids": [newest]}),
    )
    .await;
    assert_eq!(read["readNotifications"], true);
    // Unread only: the read one is left out.
    let unread = data(&server, &alice, q, json!({"u": true})).await["notifications"].clone();
    assert_eq!(titles(&unread), ["two", "one"], "{unread}");
    // Read and unread (the default): the read one is still listed, with readAt.
    let all = data(&server, &alice, q, json!({"u": false})).await["notifications"].clone();
    assert_eq!(titles(&all), ["three", "two", "one"], "{all}");
    assert!(all["notifications"][0]["readAt"].is_string(), "{all}");
    assert_eq!(all["notifications"][1]["readAt"], Value::Null, "{all}");
    // Paging: two, then the rest from `next`.
    let first = data(&server, &alice, q, json!({"l": 2})).await["notifications"].clone();
    assert_eq!(titles(&first), ["three", "two"], "{first}");
    assert!(first["next"].is_string(), "{first}");
    let rest = data(&server, &alice, q, json!({"l": 2, "b": first["next"]})).await["notifications"]
        .clone();
    assert_eq!(titles(&rest), ["one"], "{rest}");
    assert_eq!(rest["next"], Value::Null, "{rest}");
    // The /ws command's checks: a limit out of range, a cursor not hers.
    for vars in [json!({"l": 0}), json!({"l": 101}), json!({"b": "nope"})] {
        assert_eq!(
            error_code(&server, &alice, q, vars.clone()).await,
            "BAD_REQUEST",
            "{vars}"
        );
    }
    data(
        &server,
        &alice,
        "mutation { readNotifications(all: true) }",
        json!({}),
    )
    .await;
    let unread = data(&server, &alice, q, json!({"u": true})).await["notifications"].clone();
    assert_eq!(unread["notifications"], json!([]), "{unread}");
    let all = data(&server, &alice, q, json!({})).await["notifications"].clone();
    assert_eq!(titles(&all).len(), 3, "{all}");

    // GET runs queries.
    let (status, body) = server
        .get(
            "/graphql?query=%7Bhistory(room%3A%22team%3A1%22)%7Bseq%7D%7D",
            Some(&alice),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["history"][0]["seq"], 1);
}

on_both_backends!(queries_and_mutations_over_http);

#[actix_rt::test]
async fn refusals_over_http() {
    let server = Server::start("");
    let alice = server.token("alice", &["team:*"]);
    let q = r#"query { history(room: "team:1") { seq } }"#;

    // No token, a bad token, a revoked one: 401 with the error body.
    let (status, body) = gql(&server, None, q, json!({})).await;
    assert_eq!(
        (status, &body["code"]),
        (401, &json!("UNAUTHORIZED")),
        "{body}"
    );
    let (status, _) = gql(&server, Some("junk"), q, json!({})).await;
    assert_eq!(status, 401);
    let expired = server.mint(claims("alice", -120));
    let (status, _) = gql(&server, Some(&expired), q, json!({})).await;
    assert_eq!(status, 401);

    // A room the token does not allow, for reading and for sending.
    let q = r#"query { history(room: "secret:1") { seq } }"#;
    assert_eq!(error_code(&server, &alice, q, json!({})).await, "FORBIDDEN");
    let q = r#"mutation { sendMessage(room: "secret:1", content: "x") { seq } }"#;
    assert_eq!(error_code(&server, &alice, q, json!({})).await, "FORBIDDEN");
    // The /ws decoder's checks: an empty room name, a bad kind.
    let q = r#"mutation { sendMessage(room: "", content: "x") { seq } }"#;
    assert_eq!(
        error_code(&server, &alice, q, json!({})).await,
        "BAD_REQUEST"
    );
    let q = r#"mutation { sendMessage(room: "team:1", content: "x", kind: "nope") { seq } }"#;
    assert_eq!(
        error_code(&server, &alice, q, json!({})).await,
        "BAD_REQUEST"
    );

    // GET does not run mutations.
    let (status, body) = server
        .get(
            "/graphql?query=mutation%7BmarkRead(room%3A%22team%3A1%22%2Cseq%3A1)%7D",
            Some(&alice),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (405, &json!("METHOD_NOT_ALLOWED")),
        "{body}"
    );

    // Not development mode (a JWT key is set): no introspection, no GraphiQL.
    let (status, body) = gql(
        &server,
        Some(&alice),
        "{ __schema { types { name } } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body["data"]["__schema"].is_null(),
        "introspection answered: {body}"
    );
    let (status, _) = server.get("/graphql", Some(&alice)).await;
    assert_eq!(status, 400);

    // Depth and complexity limits.
    let deep = "{ a: history(room: \"team:1\") { seq } ".to_string()
        + &(0..500)
            .map(|i| format!("h{i}: history(room: \"team:1\") {{ seq content }} "))
            .collect::<String>()
        + "}";
    let (_, body) = gql(&server, Some(&alice), &deep, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("complex"), "{body}");
}

#[actix_rt::test]
async fn development_mode_has_introspection_and_graphiql() {
    let server = Server::start_with_env("", &[("REALTIME_JWT_SECRET", "")]);
    let (status, page) = server.get_text("/graphql").await;
    assert_eq!(status, 200);
    assert!(page.contains("graphiql"), "{page}");
    let (_, token) = server.get("/demo/token?user=alice", None).await;
    let token = token["token"].as_str().expect("a development token");
    let q = "{ __schema { queryType { name } } }";
    let (status, body) = gql(&server, Some(token), q, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
}

/// The graphql-ws client in Node against two nodes (tests/graphql/).
#[actix_rt::test]
async fn the_graphql_ws_client_works_across_two_nodes() {
    let db = TestDb::new(Backend::Postgres);
    let (_, a, b) = two_nodes(&db).await;
    let room = format!("team:{}", uuid::Uuid::new_v4().simple());
    let short = a.mint(claims("dave", scaled(4000).as_secs() as i64));
    let envs = [
        ("GQL_NODE_A", a.url("")),
        ("GQL_NODE_B", b.url("")),
        ("GQL_ROOM", room),
        ("GQL_TOKEN_ALICE", a.token("alice", &["team:*"])),
        ("GQL_TOKEN_BOB", a.token("bob", &["team:*"])),
        ("GQL_TOKEN_CAROL", a.token("carol", &["team:*"])),
        ("GQL_TOKEN_EVE", a.token("eve", &["other:*"])),
        ("GQL_TOKEN_SHORT", short),
        ("GQL_ADMIN_KEY", ADMIN_KEY.to_string()),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphql");
    // Node's test runner blocks this thread; the servers are processes.
    actix_rt::task::spawn_blocking(move || {
        npm(&dir, &["ci", "--no-audit", "--no-fund"], &[]);
        npm(&dir, &["test"], &envs);
    })
    .await
    .expect("npm");
}

/// The legacy `graphql-ws` subprotocol (subscriptions-transport-ws), from a
/// raw WebSocket client; the socket is a connection the admin API lists and
/// a member of the room it subscribes to. Without a subprotocol: 400.
#[actix_rt::test]
async fn the_legacy_subprotocol_works_and_the_socket_is_a_room_member() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let server = Server::start("");
    let alice = server.token("alice", &["team:*"]);
    let url = format!("ws://{}/graphql", server.addr);

    let plain = url.clone().into_client_request().unwrap();
    match tokio_tungstenite::connect_async(plain).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 400)
        }
        other => panic!("an upgrade without a subprotocol was not refused: {other:?}"),
    }

    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    assert_eq!(res.headers()["sec-websocket-protocol"], "graphql-ws");
    let init = json!({"type": "connection_init", "payload": {"token": alice}});
    let start = json!({"type": "start", "id": "1", "payload": {
        "query": "subscription { messageAdded(room: \"team:1\") { content userId } }"}});
    ws.send(Message::Text(init.to_string())).await.unwrap();
    let ack = read_json(&mut ws).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws.send(Message::Text(start.to_string())).await.unwrap();

    // Listed as a connection, and a member of the room.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let presence = server.admin_get("/admin/rooms/team:1/presence").await;
        if common::user_ids(&presence["members"]) == ["alice"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{presence}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let conns = server.admin_get("/admin/connections").await;
    assert!(conns.to_string().contains("alice"), "{conns}");

    let bob = server.token("bob", &["team:*"]);
    let q = r#"mutation { sendMessage(room: "team:1", content: "x") { seq } }"#;
    data(&server, &bob, q, json!({})).await;
    let got = read_json(&mut ws).await;
    assert_eq!(
        got,
        json!({"type": "data", "id": "1", "payload": {"data": {"messageAdded": {"content": "x", "userId": "bob"}}}})
    );
}

/// The next JSON text frame, past keep-alives.
async fn read_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    loop {
        let frame = tokio::time::timeout(common::WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] != "ka" {
                return v;
            }
        }
    }
}
