//! The practical limit for this hardware: a minimal room-broadcast server
//! written directly on tokio and tokio-tungstenite (each event serialised
//! once, its bytes shared by every member, writes batched per flush),
//! speaking the same frames
//! as realtime-server for what the benchmark uses (`room:join`,
//! `message:send` -> `message:new`). No auth, no storage, no limits.
//!
//! Usage: tokio-broadcast <port>   (prints "listening on <addr>")

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Rooms = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Message>>>>>;

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
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
                let _ = tx.send(Message::Text(r#"{"type":"connected"}"#.into()));
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
                    match v["type"].as_str() {
                        Some("room:join") => {
                            rooms.lock().unwrap().entry(room.clone()).or_default().push(tx.clone());
                            let reply = serde_json::json!({"type": "reply", "id": v["id"], "ok": true, "data": {"room": room}});
                            let _ = tx.send(Message::Text(reply.to_string().into()));
                        }
                        Some("message:send") => {
                            let seq = {
                                let mut s = seqs.lock().unwrap();
                                let n = s.entry(room.clone()).or_insert(0);
                                *n += 1;
                                *n
                            };
                            let event = serde_json::json!({"type": "message:new", "room": room, "seq": seq, "content": v["content"]});
                            let frame = Message::Text(event.to_string().into());
                            if let Some(members) = rooms.lock().unwrap().get(&room) {
                                for m in members {
                                    let _ = m.send(frame.clone());
                                }
                            }
                            if !v["id"].is_null() {
                                let reply = serde_json::json!({"type": "reply", "id": v["id"], "ok": true, "data": {"seq": seq}});
                                let _ = tx.send(Message::Text(reply.to_string().into()));
                            }
                        }
                        _ => {}
                    }
                }
            });
        }
    });
}
