//! The practical limit for this hardware: a minimal room-broadcast server
//! written directly on tokio and tokio-tungstenite (each event serialised
//! once, its bytes shared by every member, writes batched per flush).
//! For what the benchmark uses (`connected`, `room:join`, `message:send` ->
//! `message:new` and its reply) it sends frames with the same fields, in the
//! same order, as realtime-server; what it does not do (no JWT, no storage,
//! no limits, no members list on join) is listed in docs/benchmarks.md.
//!
//! Usage: tokio-broadcast <port>   (prints "listening on <addr>")

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Rooms = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Message>>>>>;

static IDS: AtomicU64 = AtomicU64::new(0);
static USERS: AtomicU64 = AtomicU64::new(0);

/// A time-ordered id shaped like our UUIDv7 message ids (48 bits of
/// milliseconds, then a counter).
fn uuid(ms: u64) -> String {
    let n = IDS.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        (n >> 48) & 0xfff,
        (n >> 36) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// Now as milliseconds since the epoch and as RFC 3339 (`...T...Z`, ms).
fn now() -> (u64, String) {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (secs, days) = (ms / 1000, (ms / 86_400_000) as i64);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    let s = secs % 86_400;
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        ms % 1000
    );
    (ms, text)
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        let rooms: Rooms = Arc::default();
        let seqs: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let (rooms, seqs) = (rooms.clone(), seqs.clone());
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
                let (mut sink, mut stream) = ws.split();
                let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
                let (ms, time) = now();
                let connection_id = uuid(ms);
                let user = format!("\"u{}\"", USERS.fetch_add(1, Ordering::Relaxed));
                let connected = format!(
                    r#"{{"type":"connected","connectionId":"{connection_id}","userId":{user},"serverTime":"{time}","protocolVersion":1,"heartbeatIntervalMs":25000}}"#
                );
                let _ = tx.send(Message::Text(connected.into()));
                // Writes what is queued, then flushes once: one syscall for
                // a burst, not one per frame.
                tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                        while let Ok(m) = rx.try_recv() {
                            if sink.feed(m).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                });
                while let Some(Ok(Message::Text(text))) = stream.next().await {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
                    let room = v["room"].as_str().unwrap_or("").to_string();
                    let id = v["id"].to_string();
                    match v["type"].as_str() {
                        Some("room:join") => {
                            rooms.lock().unwrap().entry(room.clone()).or_default().push(tx.clone());
                            let seq = seqs.lock().unwrap().get(&room).copied().unwrap_or(0);
                            let reply = format!(
                                r#"{{"type":"reply","id":{id},"ok":true,"data":{{"members":[],"missed":[],"recovered":false,"room":{},"seq":{seq}}}}}"#,
                                quoted(&room)
                            );
                            let _ = tx.send(Message::Text(reply.into()));
                        }
                        Some("message:send") => {
                            let seq = {
                                let mut s = seqs.lock().unwrap();
                                let n = s.entry(room.clone()).or_insert(0);
                                *n += 1;
                                *n
                            };
                            let (ms, time) = now();
                            let message_id = uuid(ms);
                            let content = quoted(v["content"].as_str().unwrap_or(""));
                            let event = format!(
                                r#"{{"type":"message:new","room":{},"messageId":"{message_id}","seq":{seq},"userId":{user},"content":{content},"threadId":null,"metadata":null,"timestamp":"{time}"}}"#,
                                quoted(&room)
                            );
                            let frame = Message::Text(event.into());
                            if let Some(members) = rooms.lock().unwrap().get(&room) {
                                for m in members {
                                    let _ = m.send(frame.clone());
                                }
                            }
                            if !v["id"].is_null() {
                                let reply = format!(
                                    r#"{{"type":"reply","id":{id},"ok":true,"data":{{"messageId":"{message_id}","seq":{seq},"timestamp":"{time}"}}}}"#
                                );
                                let _ = tx.send(Message::Text(reply.into()));
                            }
                        }
                        _ => {}
                    }
                }
            });
        }
    });
}
