//! `GET /demo` and `/demo/token` exist only in the insecure development
//! mode (no JWT key); with a key they are unknown paths (404).

mod common;

use common::*;
use serde_json::json;

#[actix_rt::test]
async fn with_a_jwt_key_the_demo_and_its_token_endpoint_are_404() {
    let server = Server::start("");
    for path in [
        "/demo",
        "/demo?user=alice&room=lobby",
        "/demo/token?user=alice",
        "/demo/client/index.js",
    ] {
        let (status, body) = server.get(path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["code"], "NOT_FOUND", "{path}");
    }
}

#[actix_rt::test]
async fn in_development_mode_the_page_the_client_and_working_tokens_are_served() {
    let server = Server::start_with_env("", &[("REALTIME_JWT_SECRET", "")]);
    assert!(server.log().contains("INSECURE") || server.log().contains("insecure"));
    let (status, page) = server.get_text("/demo?user=alice&room=demo").await;
    assert_eq!(status, 200);
    assert!(page.contains("<input id=\"input\""), "{page}");
    assert!(page.contains("import { RealtimeClient } from \"/demo/client/index.js\""));
    // Every module the page imports, and every one those import, is there.
    for file in [
        "index.js",
        "client.js",
        "room.js",
        "managed.js",
        "emitter.js",
        "errors.js",
        "backoff.js",
    ] {
        let (status, text) = server.get_text(&format!("/demo/client/{file}")).await;
        assert_eq!(status, 200, "{file}");
        for import in text.lines().filter_map(|l| l.split("from \"./").nth(1)) {
            let name = import.split('"').next().unwrap();
            let (status, _) = server.get_text(&format!("/demo/client/{name}")).await;
            assert_eq!(status, 200, "{file} imports {name}");
        }
    }
    let (status, _) = server.get_text("/demo/client/../Cargo.toml").await;
    assert_eq!(status, 404);
    let (status, body) = server.get("/demo/token?user=a%20b", None).await;
    assert_eq!((status, body["code"].clone()), (400, json!("BAD_REQUEST")));
    // The token works on /ws (in the query string, as the page sends it).
    let (status, body) = server.get("/demo/token?user=alice", None).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let mut client = server
        .connect_query(&format!("token={token}"))
        .await
        .expect("the demo token is accepted");
    assert_eq!(client.user_id(), "alice");
    client.join("demo").await;
}
