//! The admin API's OpenAPI document (`GET /admin/openapi.json`): it
//! describes the routes the server really has, and a property-based fuzzer
//! (schemathesis, from PyPI) run against the real server finds no 5xx and
//! no answer that does not match the document.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, ADMIN_KEY};
use serde_json::{json, Value};

/// The schemathesis release the fuzz runs with (pinned: its checks and
/// generation change between releases).
const SCHEMATHESIS: &str = "4.32.5";

#[actix_rt::test]
async fn the_document_is_openapi_3_1_and_lists_the_routes_the_server_has() {
    let server = Server::start("");
    // No credentials needed: the document holds no data.
    let (status, doc) = server.get("/admin/openapi.json", None).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["adminKey"]["type"], "http");
    assert_eq!(schemes["adminJwt"]["bearerFormat"], "JWT");
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["code", "message"]), "{error}");

    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            operations += 1;
            assert!(op["responses"]["401"].is_object(), "{method} {path}");
            // Every documented operation is routed: with placeholders for
            // the path's parameters it gets anything but the router's 404
            // (no such endpoint) or 405 (method not allowed).
            let concrete = path
                .replace("{room}", "no-such-room")
                .replace("{userId}", "nobody")
                .replace("{id}", "no-such-id");
            let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
            let (status, answer) = server
                .admin_call(&method.to_uppercase(), &concrete, body)
                .await;
            assert_ne!(status, 405, "{method} {path}: {answer}");
            assert_ne!(
                answer["message"], "no such endpoint",
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert_eq!(operations, 22, "{:?}", paths.keys().collect::<Vec<_>>());
}

/// `target/st-venv` with the pinned schemathesis, made if missing; panics
/// with what to do when it cannot be.
fn schemathesis() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/st-venv");
    let exe = venv.join("bin/schemathesis");
    let installed = Command::new(&exe)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS));
    if installed {
        return exe;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        made,
        "the OpenAPI fuzz needs `python3 -m venv` (Debian: apt-get install python3-venv)"
    );
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", &format!("schemathesis=={SCHEMATHESIS}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        pip,
        "could not install schemathesis=={SCHEMATHESIS} from PyPI into {}",
        venv.display()
    );
    exe
}

#[actix_rt::test]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let exe = schemathesis();
    let server = Server::start("");
    // Something for the fuzzer to find: a connection in a room, a managed
    // room with a member.
    let _alice = server.connect("alice", &["lobby"]).await;
    let (status, room) = server
        .admin_call(
            "POST",
            "/admin/rooms",
            Some(json!({"room": "fuzz", "members": [{"userId": "bob"}]})),
        )
        .await;
    assert_eq!(status, 201, "{room}");

    let url = server.url("/admin/openapi.json");
    let mut child = Command::new(&exe)
        .args(["run", &url, "--header"])
        .arg(format!("Authorization: Bearer {ADMIN_KEY}"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "25",
            // One worker: several make Python 3.11's `ast` fail inside
            // hypothesis (a runtime error, not a finding).
            "--workers",
            "1",
            "--continue-on-failure",
            "--no-color",
        ])
        // Its cache (`.schemathesis/`) goes under target/, not the checkout.
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().expect("schemathesis") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("schemathesis ran for more than 240 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().expect("output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status.success(), "schemathesis failed:\n{report}");
    assert!(report.contains("passed"), "{report}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
    // And the server is still up.
    let stats: Value = server.admin_get("/admin/stats").await;
    assert!(stats["nodes"].is_array(), "{stats}");
}
