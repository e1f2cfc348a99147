//! Behind a real nginx running the shipped `ops/nginx/realtime.conf`:
//! WebSocket traffic passes through, and with `server.trusted_proxies` the
//! server sees each client's own address (other loopback addresses stand
//! for other machines): the per-IP limit counts clients, not the proxy,
//! and a client cannot choose its address by writing the header itself.

mod common;

use std::net::IpAddr;

use common::{redis_prefix, redis_url, start_node, Backend, Client, Nginx, Server, TestDb};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Connects through `nginx` from `from`, with extra headers.
async fn through(
    nginx: &Nginx,
    server: &Server,
    user: &str,
    from: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, (u16, Value)> {
    let mut req = format!("ws://{}/ws", nginx.addr)
        .into_client_request()
        .unwrap();
    let token = format!("Bearer {}", server.token(user, &[]));
    req.headers_mut()
        .insert("Authorization", HeaderValue::from_str(&token).unwrap());
    for (k, v) in headers {
        req.headers_mut()
            .insert(*k, HeaderValue::from_str(v).unwrap());
    }
    let ip: IpAddr = from.parse().unwrap();
    Client::open_from(req, None, Some(ip)).await
}

/// Where the server says `user`'s connection comes from.
async fn recorded_addr(server: &Server, user: &str) -> String {
    let list = server
        .admin_get(&format!("/admin/connections?userId={user}"))
        .await;
    list["connections"][0]["remoteAddr"]
        .as_str()
        .unwrap_or_else(|| panic!("{list}"))
        .to_string()
}

#[actix_rt::test]
async fn behind_nginx_clients_keep_their_own_addresses() {
    let server = Server::start_with_env(
        "",
        &[
            ("REALTIME__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
            // A small per-address budget, to see whose it is.
            ("REALTIME__RATE_LIMITS__CONNECTIONS_PER_IP_BURST", "2"),
            ("REALTIME__RATE_LIMITS__CONNECTIONS_PER_IP_PER_SECOND", "1"),
        ],
    );
    let nginx = Nginx::start(server.addr);

    // The per-IP budget is the client's: three connections from 127.0.0.2
    // in a row, the third over its burst of 2, while 127.0.0.4 through the
    // same proxy still gets in.
    let mut alice = through(&nginx, &server, "alice", "127.0.0.2", &[])
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", nginx.error_log()));
    let _second = through(&nginx, &server, "alice2", "127.0.0.2", &[])
        .await
        .unwrap();
    let (status, body) = through(&nginx, &server, "alice3", "127.0.0.2", &[])
        .await
        .err()
        .expect("the third from 127.0.0.2 is over its budget");
    assert_eq!(
        (status, &body["code"]),
        (429, &json!("RATE_LIMITED")),
        "{body}"
    );
    through(&nginx, &server, "dave", "127.0.0.4", &[])
        .await
        .expect("another client through the same proxy");

    // The WebSocket works through the proxy, both ways, and the server
    // records the client's address.
    alice.join("lobby").await;
    let pong = alice.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(recorded_addr(&server, "alice").await, "127.0.0.2");

    // A header the client wrote itself does not choose its address: nginx
    // appends the one it saw, and that is the right-most untrusted entry.
    let _mallory = through(
        &nginx,
        &server,
        "mallory",
        "127.0.0.3",
        &[("X-Forwarded-For", "203.0.113.66")],
    )
    .await
    .unwrap();
    assert_eq!(recorded_addr(&server, "mallory").await, "127.0.0.3");
}

#[actix_rt::test]
async fn without_trusted_proxies_the_proxy_is_the_client() {
    let server = Server::start("");
    let nginx = Nginx::start(server.addr);
    let _alice = through(&nginx, &server, "alice", "127.0.0.2", &[])
        .await
        .unwrap();
    let addr = recorded_addr(&server, "alice").await;
    assert!(
        addr.starts_with("127.0.0.1:"),
        "the TCP peer, nginx: {addr}"
    );
}

/// The two-node setup of docs/deploy.md (and of docker-compose.yml),
/// without Docker: two nodes on one PostgreSQL and Redis behind the same
/// nginx, which takes turns; users on different nodes talk.
#[actix_rt::test]
async fn two_nodes_behind_one_nginx_act_as_one_server() {
    let db = TestDb::new(Backend::Postgres);
    let prefix = redis_prefix();
    let trusted = [("REALTIME__SERVER__TRUSTED_PROXIES", "127.0.0.1")];
    let a = start_node(&db, redis_url(), &prefix, "node-a", &trusted);
    a.wait_ready().await;
    let b = start_node(&db, redis_url(), &prefix, "node-b", &trusted);
    b.wait_ready().await;
    let nginx = Nginx::start_many(&[a.addr, b.addr]);

    let mut clients = Vec::new();
    for (i, from) in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
        .iter()
        .enumerate()
    {
        let mut c = through(&nginx, &a, &format!("user{i}"), from, &[])
            .await
            .unwrap_or_else(|e| panic!("{e:?}\n{}", nginx.error_log()));
        c.join("lobby").await;
        clients.push(c);
    }
    // nginx took turns: the connections are on both nodes, and each node
    // recorded its clients' own addresses.
    let conns = a.admin_get("/admin/connections").await;
    let mut seen: Vec<(String, String)> = conns["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let addr = c["remoteAddr"].as_str().unwrap().to_string();
            (addr, c["nodeId"].as_str().unwrap().to_string())
        })
        .collect();
    seen.sort();
    let addrs: Vec<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        addrs,
        ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"],
        "{conns}"
    );
    let nodes: std::collections::BTreeSet<&str> = seen.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(nodes.len(), 2, "nginx should have used both nodes: {conns}");

    for c in &mut clients {
        c.drain().await;
    }
    let sent = clients[0]
        .ok(json!({"type": "message:send", "room": "lobby", "content": "hello"}))
        .await;
    for c in &mut clients[1..] {
        let m = c.expect("message:new").await;
        assert_eq!(
            (&m["content"], &m["seq"]),
            (&json!("hello"), &sent["seq"]),
            "{m}"
        );
    }
}
