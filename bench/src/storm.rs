//! Storms: many connections opened (and closed) as fast as the server takes
//! them, `--inflight` (256) handshakes at a time.
//!
//!   storm      open --conns connections, then close them all with close
//!              frames; connections/s in and out and what failed. With
//!              `--sigterm-after-open 1` the connections stay open and the
//!              server (--pid) gets SIGTERM instead; the close codes it sent
//!              are counted (1001 expected) and the time until the last one
//!   joinstorm  open --conns connections, each joining the one room
//!              public:storm; the time until every join is answered, the
//!              largest and the total join-reply bytes, the largest
//!              memberCount seen; then every connection is closed

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::{connect, token, Opts, Ws};

/// What one connection of a storm saw.
#[derive(Default)]
struct Tally {
    opened: u64,
    failed: u64,
    /// Closed by the server before we closed it (in a SIGTERM storm: expected).
    closed_by_server: u64,
    /// Our close handshake that did not end cleanly within 10 s.
    close_failed: u64,
    /// Close codes the server sent ("none": the connection ended without one).
    codes: BTreeMap<String, u64>,
    /// When the last connection finished closing.
    last_closed: Option<Instant>,
    /// room:join (joinstorm only): replies that were errors or never came.
    join_failed: u64,
    reply_bytes_max: usize,
    reply_bytes_total: u64,
    member_count_max: u64,
    members_listed_max: usize,
}

/// Opens one connection and reads `connected`.
async fn open(o: &Opts, user: &str, n: usize) -> Result<Ws, String> {
    let mut ws = connect(&o.url, &token(&o.secret, user), n, o.sources).await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with("{\"type\":\"connected\"") => Ok(ws),
        other => Err(format!("expected connected, got {other:?}")),
    }
}

/// Sends room:join (id 1) and reads until its reply: the reply's text, or
/// None if it was an error or never came.
async fn join(ws: &mut Ws, room: &str) -> Option<String> {
    let frame = json!({"type": "room:join", "room": room, "id": 1});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .ok()?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"id\":1,") => {
                if t.starts_with("{\"type\":\"reply\"") && t.contains("\"ok\":true") {
                    return Some(t.to_string());
                }
                if t.starts_with("{\"type\":\"reply\"") || t.starts_with("{\"type\":\"error\"") {
                    return None;
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// Reads `ws` until the server closes it: the close code (None: it ended
/// without a close frame), once the connection has ended.
async fn until_closed(ws: &mut Ws) -> Option<u16> {
    let mut code = None;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Close(frame) = msg {
            code = Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
        }
    }
    code
}

pub async fn storm(o: &Opts, joining: bool) -> serde_json::Value {
    let sigterm = o.sigterm_after_open;
    let scenario = if joining { "joinstorm" } else { "storm" };
    let prefix = match (joining, sigterm) {
        (true, _) => "joiner",
        (false, true) => "stormterm",
        (false, false) => "storm",
    };
    let room = "public:storm";
    let tally = Rc::new(RefCell::new(Tally::default()));
    let gate = Rc::new(Semaphore::new(o.inflight.max(1)));
    let (go, _) = watch::channel(false);
    // Each connection says here when its opening (and join) is over.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    // The options, shared by the tasks (a task may not borrow them).
    let shared = Rc::new(o.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..o.conns)
        .map(|i| {
            let (tally, gate, ready) = (tally.clone(), gate.clone(), ready_tx.clone());
            let mut go = go.subscribe();
            let user = format!("{prefix}{i}");
            let o = shared.clone();
            tokio::task::spawn_local(async move {
                // Opening (and joining) holds a permit: at most --inflight at once.
                let permit = gate.acquire().await.unwrap();
                let mut ws = match open(&o, &user, i).await {
                    Ok(ws) => ws,
                    Err(_) => {
                        tally.borrow_mut().failed += 1;
                        let _ = ready.send(());
                        return;
                    }
                };
                if joining {
                    match join(&mut ws, room).await {
                        Some(reply) => {
                            // The room's size, and how many members the reply lists.
                            let v: serde_json::Value =
                                serde_json::from_str(&reply).unwrap_or_default();
                            let count = v.pointer("/data/memberCount").and_then(|c| c.as_u64());
                            let listed = v.pointer("/data/members").and_then(|m| m.as_array());
                            let mut t = tally.borrow_mut();
                            t.reply_bytes_max = t.reply_bytes_max.max(reply.len());
                            t.reply_bytes_total += reply.len() as u64;
                            t.member_count_max = t.member_count_max.max(count.unwrap_or(0));
                            t.members_listed_max =
                                t.members_listed_max.max(listed.map_or(0, |m| m.len()));
                        }
                        None => tally.borrow_mut().join_failed += 1,
                    }
                }
                drop(permit);
                tally.borrow_mut().opened += 1;
                let _ = ready.send(());
                // Held (answering the server's pings) until every connection
                // is open; a close from the server meanwhile is counted.
                let closed = loop {
                    tokio::select! {
                        _ = go.wait_for(|go| *go) => break None,
                        msg = ws.next() => match msg {
                            Some(Ok(Message::Close(frame))) => {
                                break Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                            }
                            Some(Ok(_)) => {}
                            _ => break Some(0),
                        },
                    }
                };
                let code = match closed {
                    // The server closed it: read on until the TCP connection ends.
                    Some(code) => {
                        let _ = until_closed(&mut ws).await;
                        tally.borrow_mut().closed_by_server += 1;
                        Some(code)
                    }
                    // Our turn to close it, --inflight at a time: a close
                    // frame, then read until the server's close and its EOF.
                    None => {
                        let _permit = gate.acquire().await.unwrap();
                        let clean = tokio::time::timeout(Duration::from_secs(10), async {
                            ws.close(None).await.is_ok() && {
                                until_closed(&mut ws).await;
                                true
                            }
                        })
                        .await;
                        if clean != Ok(true) {
                            tally.borrow_mut().close_failed += 1;
                        }
                        None
                    }
                };
                let mut t = tally.borrow_mut();
                if let Some(code) = code {
                    let key = if code == 0 {
                        "none".to_string()
                    } else {
                        code.to_string()
                    };
                    *t.codes.entry(key).or_default() += 1;
                }
                t.last_closed = Some(Instant::now());
            })
        })
        .collect();
    drop(ready_tx);
    for _ in 0..o.conns {
        ready_rx.recv().await;
    }
    let opened_at = Instant::now();
    let cpu_before = super::cpu_secs(o.pid);
    if sigterm {
        // The server closes every connection itself (1001) and exits.
        if let Some(pid) = o.pid {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    } else {
        let _ = go.send(true);
    }
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    let timed_out = tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .is_err();
    let t = tally.borrow();
    let open_secs = opened_at.duration_since(started).as_secs_f64();
    let close_secs = t
        .last_closed
        .unwrap_or(opened_at)
        .saturating_duration_since(opened_at)
        .as_secs_f64();
    let mut out = json!({"scenario": scenario, "connections": t.opened, "failed": t.failed,
        "openSecs": open_secs, "openedPerSecond": t.opened as f64 / open_secs.max(1e-9),
        "closeSecs": close_secs, "closedPerSecond": t.opened as f64 / close_secs.max(1e-9),
        "closeFailed": t.close_failed, "closeCodes": t.codes, "inflight": o.inflight});
    if sigterm {
        out["sigterm"] = json!(true);
        out["closedByServer"] = json!(t.closed_by_server);
    } else {
        // Closed by the server before we closed it: a loss here.
        out["lost"] = json!(t.closed_by_server);
        out["serverCpuSecsClosing"] =
            json!(cpu_before.zip(super::cpu_secs(o.pid)).map(|(a, b)| b - a));
    }
    if joining {
        out["joinFailed"] = json!(t.join_failed);
        out["replyBytesMax"] = json!(t.reply_bytes_max);
        out["replyBytesTotal"] = json!(t.reply_bytes_total);
        out["memberCountMax"] = json!(t.member_count_max);
        out["membersListedMax"] = json!(t.members_listed_max);
    }
    if timed_out {
        out["error"] = json!("connections still open 120 s after the storm");
    }
    out
}
