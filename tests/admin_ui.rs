//! The admin page (`GET /admin/ui`) in headless Chromium: it refuses a
//! wrong key, shows a connected client and its room with the right one, and
//! its kick form closes that client's WebSocket with 4003. The browser
//! part is `clients/js/browser/admin-ui.mjs` (playwright-core from the JS
//! client's dependencies, the system's chromium).

mod common;

use std::path::Path;
use std::process::Command;

use common::{js_client_dir, npm, Closed, Server, ADMIN_KEY, WAIT};

/// The page and its script come without credentials, and the page's
/// script comes from this server only.
#[actix_rt::test]
async fn the_page_is_served_without_credentials_and_holds_no_data() {
    let server = Server::start("");
    let (status, html) = server.get_text("/admin/ui").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<script type="module" src="/admin/ui/app.js">"#));
    assert!(!html.contains(ADMIN_KEY));
    let (status, js) = server.get_text("/admin/ui/app.js").await;
    assert_eq!(status, 200);
    assert!(js.contains("Authorization: `Bearer ${key}`"), "{js}");
}

#[actix_rt::test]
async fn the_admin_page_shows_a_client_and_kicks_it_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no chromium at {chromium}: `apt-get install -y chromium` (scripts/test.sh does), or set CHROMIUM_PATH"
    );
    if !js_client_dir()
        .join("node_modules/playwright-core")
        .exists()
    {
        npm(&js_client_dir(), &["ci", "--no-audit", "--no-fund"], &[]);
    }
    let server = Server::start("");
    let mut alice = server.connect("alice", &["lobby"]).await;
    alice.join("lobby").await;

    let origin = server.url("");
    let origin = origin.trim_end_matches('/').to_string();
    let run = actix_rt::task::spawn_blocking(move || {
        Command::new("node")
            .arg("browser/admin-ui.mjs")
            .args([&origin, ADMIN_KEY, "alice", "lobby"])
            .current_dir(js_client_dir())
            .output()
            .expect("run node")
    });
    let out = run.await.expect("node");
    assert!(
        out.status.success(),
        "the admin page test failed:\n{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    // Alice's socket was closed by the kick from the page's form.
    match alice.closed(WAIT).await {
        Closed::Code(code) => assert_eq!(code, 4003),
        other => panic!("alice's connection ended without a close frame: {other:?}"),
    }
    // The kick's audit event (written in the background) has its reason.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let audit = server.admin_get("/admin/audit?kind=kick").await;
        if audit["events"][0]["detail"]["reason"] == "kicked from the admin page" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{audit}");
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
