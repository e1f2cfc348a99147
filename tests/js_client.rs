//! The JavaScript client's own tests (`clients/js`, `npm test`) and the
//! demo page in a real browser (`npm run test:browser`, playwright-core with
//! the system's chromium), both against this build's server binary. So
//! `cargo test` runs them; they fail, never skip, when node, npm or
//! chromium is missing (`.ci/run` installs chromium).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One npm at a time: `npm ci` once, then the two suites one after the other
/// (each starts servers and, for the browser, chromium).
static NPM: Mutex<bool> = Mutex::new(false);

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js")
}

fn npm(args: &[&str]) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(client_dir())
        .env("REALTIME_SERVER_BIN", env!("CARGO_BIN_EXE_realtime-server"))
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `npm {}` (node and npm are needed): {e}",
                args.join(" ")
            )
        });
    assert!(
        status.success(),
        "`npm {}` failed: {status}",
        args.join(" ")
    );
}

/// `npm ci` and `npm run build` (the type check), once per test run.
fn prepared() -> std::sync::MutexGuard<'static, bool> {
    let mut done = NPM.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        npm(&["ci", "--no-audit", "--no-fund"]);
        npm(&["run", "build"]);
        *done = true;
    }
    done
}

#[test]
fn the_javascript_client_passes_its_tests_against_the_real_server() {
    let _npm = prepared();
    npm(&["test"]);
}

#[test]
fn the_demo_page_works_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no chromium at {chromium}: `apt-get install -y chromium` (as .ci/run does), or set CHROMIUM_PATH"
    );
    let _npm = prepared();
    npm(&["run", "test:browser"]);
}
