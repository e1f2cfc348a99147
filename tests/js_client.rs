//! The JavaScript client's own tests (`clients/js`, `npm test`) and the
//! demo page in a real browser (`npm run test:browser`, playwright-core with
//! the system's chromium), both against this build's server binary. So
//! `cargo test` runs them; they fail, never skip, when node, npm or
//! chromium is missing (`scripts/test.sh` installs chromium).

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{js_client_dir, npm};

/// One npm at a time: `npm ci` once, then the two suites one after the other
/// (each starts servers and, for the browser, chromium).
static NPM: Mutex<bool> = Mutex::new(false);

/// The server binary the client's tests start.
fn server_bin() -> [(&'static str, String); 1] {
    [(
        "REALTIME_SERVER_BIN",
        env!("CARGO_BIN_EXE_realtime-server").to_string(),
    )]
}

/// `npm ci` and `npm run build` (the type check), once per test run.
fn prepared() -> std::sync::MutexGuard<'static, bool> {
    let mut done = NPM.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        npm(&js_client_dir(), &["ci", "--no-audit", "--no-fund"], &[]);
        npm(&js_client_dir(), &["run", "build"], &[]);
        *done = true;
    }
    done
}

#[test]
fn the_javascript_client_passes_its_tests_against_the_real_server() {
    let _npm = prepared();
    npm(&js_client_dir(), &["test"], &server_bin());
}

#[test]
fn the_demo_page_works_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no chromium at {chromium}: `apt-get install -y chromium` (scripts/test.sh does), or set CHROMIUM_PATH"
    );
    let _npm = prepared();
    npm(&js_client_dir(), &["run", "test:browser"], &server_bin());
}
