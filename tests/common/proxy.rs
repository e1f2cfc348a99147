//! A TCP proxy in front of a real service (PostgreSQL), which a test can
//! cut (connections fail) or hold (bytes wait) without touching the
//! shared service.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    held: watch::Sender<bool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    /// Forwards to `target` (`host:port`). Runs on a thread of its own, so
    /// it keeps forwarding while the test blocks (for instance while a
    /// server starts).
    pub fn start(target: &str) -> Proxy {
        let target = target.to_string();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (held, held_rx) = watch::channel(false);
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                while let Ok((inbound, _)) = listener.accept().await {
                    if !up2.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let (target, held) = (target.clone(), held_rx.clone());
                    let task = tokio::spawn(async move {
                        if let Ok(outbound) = TcpStream::connect(&target).await {
                            let (in_r, in_w) = inbound.into_split();
                            let (out_r, out_w) = outbound.into_split();
                            tokio::select! {
                                _ = pump(in_r, out_w, held.clone()) => {}
                                _ = pump(out_r, in_w, held) => {}
                            }
                        }
                    });
                    conns2.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        Proxy {
            addr,
            up,
            held,
            conns,
        }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Keeps every connection open but forwards nothing, either way, until
    /// [`release`](Self::release): the service looks stuck, not gone.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Forwards what was held, and everything after it.
    pub fn release(&self) {
        self.held.send_replace(false);
    }
}

/// Copies `from` to `to`, waiting while the proxy is held.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut held: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *held.borrow_and_update() {
            if held.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
        self.release();
    }
}
