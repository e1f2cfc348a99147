//! The operator commands against a running server, as an operator types
//! them: readable tables, `--json`, the admin key from the environment, and
//! clear failures for a wrong key or no server.

mod common;

use std::process::{Command, Stdio};

use common::{user_ids, Server, ADMIN_KEY, WAIT};
use serde_json::Value;

/// Runs `realtime-server ARGS` with only PATH and `env`: whether it
/// succeeded, its stdout and its stderr.
fn cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_realtime-server"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run realtime-server");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Runs an operator command against `server` with the admin key; it must
/// succeed.
fn ask(server: &Server, args: &[&str]) -> String {
    let url = server.url("");
    let mut all = args.to_vec();
    all.extend(["--server", &url]);
    let (ok, out, err) = cli(&all, &[("REALTIME_ADMIN_TOKEN", ADMIN_KEY)]);
    assert!(ok, "{args:?} failed:\n{out}\n{err}");
    out
}

#[actix_rt::test]
async fn operator_commands_show_a_running_server() {
    let server = Server::start("");
    let mut alice = server.connect("alice", &[]).await;
    alice.join("lobby").await;
    let _bob = server.connect("bob", &[]).await;

    let out = ask(&server, &["connections"]);
    let header = out.lines().next().unwrap_or_default();
    assert!(header.contains("USERID"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("alice")).count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("bob")).count(),
        1,
        "{out}"
    );
    let out = ask(&server, &["connections", "--user", "alice", "--json"]);
    let json: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(user_ids(&json["connections"]), ["alice"], "{out}");

    let out = ask(&server, &["rooms"]);
    let lobby = out
        .lines()
        .find(|l| l.starts_with("lobby"))
        .unwrap_or_else(|| panic!("no lobby row:\n{out}"));
    assert!(lobby.split_whitespace().any(|c| c == "1"), "{out}");

    let out = ask(&server, &["stats"]);
    assert!(out.contains("nodes:"), "{out}");
    let json: Value = serde_json::from_str(&ask(&server, &["stats", "--json"])).unwrap();
    assert_eq!(json["connections"], 2, "{json}");

    // The audit log is written in the background: wait for the connects.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = ask(&server, &["events", "-n", "5"]);
        if out.lines().filter(|l| l.contains("connect")).count() >= 2 {
            assert!(out.lines().next().unwrap().contains("KIND"), "{out}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connect events:\n{out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let out = ask(&server, &["status"]);
    assert!(out.contains("health:") && out.contains("ready:"), "{out}");
    assert!(out.contains("status:  ok"), "{out}");
}

#[actix_rt::test]
async fn a_wrong_key_or_no_server_fails_with_a_reason() {
    let server = Server::start("");
    let url = server.url("");
    let (ok, out, err) = cli(
        &["stats", "--server", &url],
        &[("REALTIME_ADMIN_TOKEN", "not-the-key")],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("401") && err.contains("UNAUTHORIZED"), "{err}");

    let (ok, _, err) = cli(&["stats", "--server", &url], &[]);
    assert!(!ok);
    assert!(err.contains("REALTIME_ADMIN_TOKEN"), "{err}");
    // `status` needs no key (a container's health check runs it).
    let (ok, out, err) = cli(&["status", "--server", &url], &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("ready:"), "{out}");

    // A port nothing listens on (the server's, once it is gone).
    drop(server);
    let (ok, _, err) = cli(
        &["status", "--server", &url],
        &[("REALTIME_ADMIN_TOKEN", ADMIN_KEY)],
    );
    assert!(!ok);
    assert!(err.contains("cannot reach the server"), "{err}");
}

#[test]
fn check_config_and_print_config_tell_the_operator_what_is_in_force() {
    let (ok, out, err) = cli(&["check-config"], &[("REALTIME_PORT", "9001")]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("configuration ok"), "{out}");

    // A typo: warned about in development, an error in production.
    let (ok, _, err) = cli(&["check-config"], &[("REALTIME_JWT_SECRETS", "x")]);
    assert!(ok, "{err}");
    assert!(err.contains("did you mean REALTIME_JWT_SECRET?"), "{err}");
    let production = [
        ("REALTIME__SERVER__ENVIRONMENT", "production"),
        (
            "REALTIME_JWT_SECRET",
            "a-long-enough-secret-for-production-use",
        ),
        ("REALTIME_SERVER__PORT", "9001"),
    ];
    let (ok, _, err) = cli(&["check-config"], &production);
    assert!(!ok, "production must refuse a variable that sets nothing");
    assert!(
        err.contains("did you mean REALTIME__SERVER__PORT?"),
        "{err}"
    );
    // A bad value names its key and where it came from.
    let (ok, _, err) = cli(
        &["check-config"],
        &[("REALTIME__LIMITS__MAX_FRAME_BYTES", "lots")],
    );
    assert!(!ok);
    assert!(
        err.contains("limits.max_frame_bytes") && err.contains("REALTIME__LIMITS__MAX_FRAME_BYTES"),
        "{err}"
    );

    let (ok, out, err) = cli(
        &["print-config"],
        &[
            ("REALTIME_PORT", "9001"),
            ("REALTIME_ADMIN_TOKEN", "do-not-print-me"),
        ],
    );
    assert!(ok, "{err}");
    assert!(!out.contains("do-not-print-me"), "{out}");
    assert!(out.contains("admin_token = \"***\""), "{out}");
    let port = out.lines().find(|l| l.starts_with("port = ")).unwrap();
    assert!(
        port.starts_with("port = 9001") && port.contains("REALTIME_PORT"),
        "{port}"
    );
}

#[actix_rt::test]
async fn log_format_json_writes_one_json_object_per_line() {
    let server = Server::start_with_env("", &[("REALTIME__LOG__FORMAT", "json")]);
    let _alice = server.connect("alice", &[]).await;
    // A refused handshake is logged too (revoked tokens are, at info).
    server
        .admin(
            "/admin/kick",
            serde_json::json!({"userId": "bob", "revoke": true}),
        )
        .await;
    let old = server.mint(realtime_server::auth::Claims {
        iat: Some(1),
        ..common::claims("bob", 600)
    });
    assert_eq!(server.connect_with(&old, &[]).await.err().unwrap().0, 401);
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        for key in ["ts", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} missing: {line}");
        }
    }
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .contains("handshake refused (401, revoked)")),
        "{log}"
    );
}
