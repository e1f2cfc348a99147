//! A WebSocket client written byte by byte, for tests that must send what a
//! well-behaved library never would: frame headers that lie about their
//! length, payloads streamed without end, continuations out of place. It also
//! reads the server's text frames as raw text (no JSON round trip).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Frame opcodes (RFC 6455 §5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The server's resident memory in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("server process status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A frame header as a client sends it: masked, with `declared` as the
/// payload length whatever follows.
pub fn header(opcode: u8, fin: bool, declared: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    match declared {
        0..=125 => h.push(0x80 | declared as u8),
        126..=0xffff => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(declared as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&declared.to_be_bytes());
        }
    }
    h.extend_from_slice(&MASK);
    h
}

/// A whole masked client frame.
pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = header(opcode, fin, payload.len() as u64);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// What the server sent.
#[derive(Debug, PartialEq)]
pub enum Received {
    Text(String),
    Close(u16),
    Other(u8),
}

pub struct RawWs {
    pub socket: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Opens a WebSocket to `/ws` with `token` and reads the `connected`
    /// frame.
    pub fn connect(addr: SocketAddr, token: &str) -> RawWs {
        let mut socket = TcpStream::connect(addr).expect("tcp connect");
        socket.set_nodelay(true).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socket
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).unwrap();
        let mut ws = RawWs {
            socket,
            buf: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            ws.fill().expect("handshake answer");
        };
        let head = String::from_utf8_lossy(&ws.buf[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
        ws.buf.drain(..head_end);
        match ws.read(Duration::from_secs(10)) {
            Some(Received::Text(t)) if t.contains(r#""type":"connected""#) => {}
            other => panic!("expected `connected`, got {other:?}"),
        }
        ws
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.socket.read(&mut chunk)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).expect("send");
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(&frame(TEXT, true, text.as_bytes()));
    }

    /// The next frame within `wait`; `None` when nothing came or the
    /// connection ended without a close frame.
    pub fn read(&mut self, wait: Duration) -> Option<Received> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self.fill() {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads until a close frame and returns its code; panics if the
    /// connection is still open after `wait` or ends without one.
    pub fn close_code(&mut self, wait: Duration) -> u16 {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left) {
                Some(Received::Close(code)) => return code,
                Some(_) => continue,
                None if Instant::now() >= deadline => {
                    panic!("no close frame within {wait:?}")
                }
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// The next text frame (skipping control frames).
    pub fn text(&mut self, wait: Duration) -> String {
        loop {
            match self.read(wait) {
                Some(Received::Text(t)) => return t,
                Some(Received::Other(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }
}

/// One unmasked server frame from the front of `buf`, and its length.
fn parse_server_frame(buf: &[u8]) -> Option<(Received, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, start) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < start + len {
        return None;
    }
    let payload = &buf[start..start + len];
    let frame = match opcode {
        TEXT => Received::Text(String::from_utf8_lossy(payload).to_string()),
        CLOSE if len >= 2 => Received::Close(u16::from_be_bytes([payload[0], payload[1]])),
        CLOSE => Received::Close(1005),
        other => Received::Other(other),
    };
    Some((frame, start + len))
}
