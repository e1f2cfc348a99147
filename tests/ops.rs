//! The operator's files hold: `ops/grafana-dashboard.json` is valid and
//! every metric its panels graph exists on a running server, and so does
//! every metric of `ops/prometheus-alerts.yml`, which `promtool` accepts.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::Server;
use serde_json::Value;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/grafana-dashboard.json");
const ALERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/prometheus-alerts.yml");

/// The server's metric names used in a PromQL text (ours and `process_*`).
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("realtime_") || t.starts_with("process_"))
        .map(String::from)
        .collect()
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(DASHBOARD).expect("the dashboard");
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(
        dash["title"].is_string() && dash["uid"].is_string(),
        "not a dashboard"
    );
    let panels = dash["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    panels
        .iter()
        .flat_map(|p| {
            let targets = p["targets"].as_array().expect("each panel has targets");
            assert!(!targets.is_empty(), "panel {} graphs nothing", p["title"]);
            targets
                .iter()
                .map(|t| t["expr"].as_str().expect("a PromQL expr").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[actix_rt::test]
async fn every_metric_the_dashboard_and_alerts_use_exists() {
    let mut wanted = BTreeSet::new();
    for expr in dashboard_exprs() {
        wanted.extend(metric_names(&expr));
    }
    let alerts = std::fs::read_to_string(ALERTS).expect("the alert rules");
    wanted.extend(metric_names(&alerts));
    assert!(wanted.len() > 10, "{wanted:?}");

    let server = Server::start("");
    let _alice = server.connect("alice", &[]).await;
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    let exposed: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|m| !exposed.contains(m.as_str()))
        .collect();
    assert!(missing.is_empty(), "not on /metrics: {missing:?}\n{text}");
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let out = Command::new("promtool")
        .args(["check", "rules", ALERTS])
        .output()
        .expect("promtool is not installed: apt-get install -y prometheus (scripts/test.sh does)");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}
