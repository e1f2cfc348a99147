//! The operator's command line: `realtime-server rooms`, `create-room`,
//! `connections`, `events`, `stats`, `status`. Each asks a running
//! server's HTTP API (`--server`, default this machine's configured port)
//! with the admin key (`auth.admin_token` / `REALTIME_ADMIN_TOKEN`; `status`
//! reads only `/health` and `/ready` and needs none) and
//! prints the answer as readable tables, or as JSON with `--json`.
//!
//! The rendering is plain functions over the JSON answers ([`render`]),
//! unit-tested below; the HTTP calls are [`AdminClient`].

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::config::Settings;

/// What one command asks of the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Rooms,
    CreateRoom {
        name: String,
        kind: Option<String>,
        visibility: Option<String>,
        title: Option<String>,
    },
    Connections {
        user: Option<String>,
    },
    Events {
        limit: u32,
    },
    Stats,
    Status,
}

/// Where the server is and how to prove we are its operator.
pub struct AdminClient {
    base: String,
    key: String,
    client: awc::Client,
}

/// The server's answer to a call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the server at {url}: {reason} (is it running? give its address with --server http://HOST:PORT)")]
    Unreachable { url: String, reason: String },
    #[error("{what}: {status} {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error("no admin key: set auth.admin_token in the config file or REALTIME_ADMIN_TOKEN")]
    NoKey,
}

/// `http://127.0.0.1:<port>` of the configured server: the host it binds,
/// or this machine when it binds every address.
pub fn default_server(settings: &Settings) -> String {
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "::" | "" => "127.0.0.1",
        other => other,
    };
    format!("http://{host}:{}", settings.server.port)
}

impl AdminClient {
    /// A client for `server`; `key` may be empty for `status`, which needs
    /// none.
    pub fn new(server: &str, key: &str) -> Result<Self, CliError> {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(15))
            .finish();
        Ok(AdminClient {
            base: server.trim_end_matches('/').to_string(),
            key: key.to_string(),
            client,
        })
    }

    /// Sends one request; the JSON body of a 2xx answer, else the error.
    async fn send(
        &self,
        method: awc::http::Method,
        path: &str,
        body: Option<Value>,
        accept: &[u16],
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let req = self
            .client
            .request(method.clone(), &url)
            .insert_header(("Authorization", format!("Bearer {}", self.key)));
        let sent = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        };
        let mut res = sent.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = res.status().as_u16();
        let bytes =
            res.body()
                .limit(64 * 1024 * 1024)
                .await
                .map_err(|e| CliError::Unreachable {
                    url: self.base.clone(),
                    reason: e.to_string(),
                })?;
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if (200..300).contains(&status) || accept.contains(&status) {
            Ok(value)
        } else {
            let body = match &value {
                Value::Object(o) if o.contains_key("code") => format!(
                    "{}: {}",
                    o["code"].as_str().unwrap_or("?"),
                    o.get("message").and_then(Value::as_str).unwrap_or("")
                ),
                other => other.to_string(),
            };
            Err(CliError::Refused {
                what: format!("{method} {path}"),
                status,
                body,
            })
        }
    }

    async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(awc::http::Method::GET, path, None, &[]).await
    }

    /// Carries out `call`: the answer, and whether it reports success
    /// (`status` of a server that is not ready does not).
    pub async fn run(&self, call: &Call) -> Result<(Value, bool), CliError> {
        use awc::http::Method;
        if self.key.is_empty() && *call != Call::Status {
            return Err(CliError::NoKey);
        }
        let answer = match call {
            Call::Rooms => self.get("/admin/rooms").await?,
            Call::CreateRoom {
                name,
                kind,
                visibility,
                title,
            } => {
                let mut body = json!({ "room": name });
                for (key, value) in [("type", kind), ("visibility", visibility), ("title", title)] {
                    if let Some(v) = value {
                        body[key] = json!(v);
                    }
                }
                self.send(Method::POST, "/admin/rooms", Some(body), &[])
                    .await?
            }
            Call::Connections { user } => {
                let query = user
                    .as_ref()
                    .map(|u| format!("?userId={}", encode(u)))
                    .unwrap_or_default();
                self.get(&format!("/admin/connections{query}")).await?
            }
            Call::Events { limit } => self.get(&format!("/admin/audit?limit={limit}")).await?,
            Call::Stats => self.get("/admin/stats").await?,
            Call::Status => {
                let health = self.get("/health").await?;
                let ready = self.send(Method::GET, "/ready", None, &[503]).await?;
                let ok = ready["status"] == "ok";
                return Ok((json!({ "health": health, "ready": ready }), ok));
            }
        };
        Ok((answer, true))
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One cell: text as it is, `-` for null, anything else as compact JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The columns each listing shows first (the rest follow, by name).
const FIRST_COLUMNS: &[&str] = &[
    "nodeId",
    "room",
    "userId",
    "kind",
    "createdAt",
    "connectionId",
    "users",
    "connections",
    "rooms",
    "remoteAddr",
    "connectedAt",
];

/// Rows of objects as an aligned table, the usual columns first
/// ([`FIRST_COLUMNS`]), then the others by name; an empty list says so.
pub fn table(rows: &[Value]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let mut columns: Vec<String> = FIRST_COLUMNS
        .iter()
        .filter(|c| rows.iter().any(|r| r.get(**c).is_some()))
        .map(|c| c.to_string())
        .collect();
    for row in rows {
        if let Value::Object(o) = row {
            for key in o.keys() {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
    }
    if columns.is_empty() {
        return rows.iter().map(|r| cell(r) + "\n").collect();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(&r[c.as_str()])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, values: &[String]| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    line(&mut out, &header);
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// An answer for people: an object's plain fields as `key: value` lines,
/// then each list in it as a titled table and each nested object as an
/// indented section.
pub fn render(value: &Value) -> String {
    let mut out = String::new();
    match value {
        // A listing (`{"rooms": [...]}`): just its table.
        Value::Object(o) if o.len() == 1 && o.values().all(Value::is_array) => {
            render_into(&mut out, o.values().next().unwrap_or(&Value::Null), "")
        }
        other => render_into(&mut out, other, ""),
    }
    out
}

fn render_into(out: &mut String, value: &Value, indent: &str) {
    match value {
        Value::Object(o) => render_object(out, o, indent),
        Value::Array(rows) => {
            for line in table(rows).lines() {
                let _ = writeln!(out, "{indent}{line}");
            }
        }
        other => {
            let _ = writeln!(out, "{indent}{}", cell(other));
        }
    }
}

fn render_object(out: &mut String, o: &Map<String, Value>, indent: &str) {
    let (nested, plain): (Vec<_>, Vec<_>) =
        o.iter().partition(|(_, v)| v.is_array() || v.is_object());
    let width = plain.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    for (key, value) in &plain {
        let _ = writeln!(
            out,
            "{indent}{:<width$}  {}",
            format!("{key}:"),
            cell(value)
        );
    }
    for (key, value) in nested {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{indent}{key}:");
        render_into(out, value, &format!("{indent}  "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_in_first_seen_order() {
        let rows = [
            json!({"room": "lobby", "users": 12, "connections": 15}),
            json!({"room": "team:a-long-name", "users": 1, "connections": 1, "extra": null}),
        ];
        assert_eq!(
            table(&rows),
            "ROOM              USERS  CONNECTIONS  EXTRA\n\
             lobby             12     15           -\n\
             team:a-long-name  1      1            -\n"
        );
        assert_eq!(table(&[]), "(none)\n");
        // A listing is its table alone; the usual columns come first.
        let listing = json!({"connections": [{"connectedAt": "t", "userId": "alice", "a": 1}]});
        assert_eq!(
            render(&listing),
            "USERID  CONNECTEDAT  A\nalice   t            1\n"
        );
    }

    #[test]
    fn answers_show_plain_fields_then_their_lists() {
        let stats = json!({
            "connections": 3,
            "nodes": [{"nodeId": "n1", "connections": 3}],
            "nodesNotAnswering": 0,
        });
        assert_eq!(
            render(&stats),
            "connections:        3\n\
             nodesNotAnswering:  0\n\
             \n\
             nodes:\n  \
               NODEID  CONNECTIONS\n  \
               n1      3\n"
        );
    }

    #[test]
    fn status_sections_nest() {
        let status = json!({
            "health": {"status": "ok"},
            "ready": {"status": "ok", "checks": {"database": "ok"}},
        });
        assert_eq!(
            render(&status),
            "health:\n  status:  ok\n\nready:\n  status:  ok\n\n  checks:\n    database:  ok\n"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("alice@example.com/x y"),
            "alice%40example.com%2Fx%20y"
        );
    }
}
