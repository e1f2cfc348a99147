//! What the registry and the HTTP layer know of a connection without its
//! session running: its id, its socket (to shut down a jammed one) and the
//! shared [`ConnHandle`] (slow-consumer flag, mailbox count).

use std::fs::File;
use std::mem::ManuallyDrop;
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use crate::metrics::Metrics;

pub type ConnId = uuid::Uuid;

/// Where a connection's socket is, noted when it is accepted, so that a
/// jammed WebSocket can be shut down from outside its session without
/// holding a second descriptor. The descriptor number alone could name a
/// later connection once this one closes; the socket's inode tells them
/// apart.
#[derive(Debug, Clone, Copy)]
pub struct ConnSocket {
    fd: RawFd,
    dev: u64,
    ino: u64,
}

impl ConnSocket {
    pub fn of(socket: &impl AsRawFd) -> std::io::Result<Self> {
        let fd = socket.as_raw_fd();
        let meta = Self::borrow(fd).metadata()?;
        Ok(ConnSocket {
            fd,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The descriptor as a `File` that never closes it.
    fn borrow(fd: RawFd) -> ManuallyDrop<File> {
        // SAFETY: the `File` is never dropped, so it never closes `fd`; the
        // calls made on it (fstat, shutdown) are harmless on a descriptor
        // that is closed (EBADF) or names something else (checked first).
        ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
    }

    /// Shuts the socket down if the descriptor still names it; true if it
    /// did. Must run on the worker thread that owns the connection: only
    /// that thread closes it, so it cannot close between the check and the
    /// shutdown.
    fn shut_down(&self) -> bool {
        let same = Self::borrow(self.fd)
            .metadata()
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if !same {
            return false;
        }
        // SAFETY: as in `borrow`; the stream is never dropped.
        let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(self.fd) });
        stream.shutdown(SocketShutdown::Both).is_ok()
    }
}

/// State shared between a session and the registry that does not need the
/// session to run: the registry marks a slow consumer here, and a timer
/// shuts the socket down if the session is too jammed to close itself.
pub struct ConnHandle {
    slow: AtomicBool,
    closed: AtomicBool,
    /// Messages in this session's mailbox; what is left when the handle
    /// drops was discarded with the session, and leaves the depth gauge.
    queued: AtomicU64,
    metrics: Arc<Metrics>,
    /// The connection's socket and the worker thread that owns it.
    socket: Option<(ConnSocket, ArbiterHandle)>,
}

impl ConnHandle {
    /// `socket` is the connection's, and this runs on its worker thread.
    pub fn new(socket: Option<ConnSocket>, metrics: Arc<Metrics>) -> Arc<Self> {
        let socket = socket.and_then(|s| Arbiter::try_current().map(|worker| (s, worker)));
        Arc::new(ConnHandle {
            slow: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            queued: AtomicU64::new(0),
            metrics,
            socket,
        })
    }

    /// A message was put in the session's mailbox.
    pub fn enqueued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.metrics.session_mailbox.sent();
    }

    /// The session took a message from its mailbox.
    pub fn dequeued(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.metrics.session_mailbox.handled();
    }

    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Relaxed)
    }

    /// Marks the connection slow; true only the first time.
    pub fn mark_slow(&self) -> bool {
        !self.slow.swap(true, Ordering::AcqRel)
    }

    /// Shuts the TCP connection down unless the session already ended. The
    /// blocked write then fails, the connection is dropped and the session
    /// stops, running its cleanup. The shutdown itself runs on the
    /// connection's worker thread (see `ConnSocket::shut_down`).
    pub fn shut_down_socket(&self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Some((socket, worker)) = &self.socket {
            let socket = *socket;
            worker.spawn_fn(move || {
                if socket.shut_down() {
                    log::warn!("shut down a jammed connection's socket");
                }
            });
        }
    }

    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        let left = self.queued.load(Ordering::Relaxed);
        self.metrics.session_mailbox.discarded(left);
    }
}

#[cfg(test)]
mod tests {
    use super::ConnSocket;
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_socket_is_shut_down_only_while_its_descriptor_still_names_it() {
        use std::io::{Read, Write};
        use std::net::TcpListener;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let first = TcpStream::connect(addr).unwrap();
        let noted = ConnSocket::of(&first).unwrap();
        let fd = first.as_raw_fd();
        drop(first);
        assert!(!noted.shut_down(), "a closed descriptor is left alone");

        // Open sockets until one reuses the descriptor number (the lowest
        // free number is taken, so this is quick unless other tests race).
        let mut held = Vec::new();
        let reused = loop {
            let s = TcpStream::connect(addr).unwrap();
            if s.as_raw_fd() == fd {
                break s;
            }
            assert!(held.len() < 200, "descriptor {fd} never came back");
            held.push(s);
        };
        let (mut peer, _) = listener.accept().unwrap();
        while peer.peer_addr().unwrap() != reused.local_addr().unwrap() {
            peer = listener.accept().unwrap().0;
        }
        assert!(!noted.shut_down(), "another socket on the same number");
        (&reused).write_all(b"still open").unwrap();
        let mut buf = [0u8; 10];
        peer.read_exact(&mut buf).unwrap();

        assert!(ConnSocket::of(&reused).unwrap().shut_down());
        assert_eq!(peer.read(&mut buf).unwrap(), 0, "the peer sees the end");
    }
}
