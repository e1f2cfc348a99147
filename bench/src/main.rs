//! realtime-bench: an open-loop WebSocket load generator on a
//! single-threaded runtime (pin it with `taskset -c N`).
//!
//! Usage: realtime-bench <scenario> --url ws://127.0.0.1:PORT/ws [options]
//!
//! Scenarios (each prints one JSON line of figures):
//!   idle       open --conns connections, report server RSS per connection
//!              after connecting and after --duration seconds idle (--pid)
//!   handshake  open (and close) connections for --duration seconds, 64 at
//!              a time; handshakes/s and the server's CPU per handshake
//!   fanout     --subs subscribers in one room; one publisher sends --rate
//!              messages/s for --duration seconds, open loop. Each message
//!              carries the time it was due (not the time it was written:
//!              a publisher that falls behind does not hide the delay);
//!              subscribers keep reading for up to --drain seconds after the
//!              last send. Offered and delivered deliveries, the drain time,
//!              the rate over publish + drain, latency percentiles, server
//!              CPU per delivery and the generator's own CPU
//!   gqlfanout  the same, the subscribers on `/graphql` (graphql-transport-ws,
//!              `subscription { messageAdded(room) { content } }`) beside the
//!              `/ws` of --url, the publisher on `/ws`; the run starts once
//!              presence:get counts every subscriber in the room (gql.rs)
//!   persist    --senders connections, spread over --rooms rooms (8), keep
//!              --window message:send each in flight for --duration
//!              seconds; acknowledged messages/s
//!   burst      open --conns connections, each in a room of its own; every
//!              connection sends --count messages of --size characters at
//!              once and reads its copies back (a refused send, `errors`,
//!              has none); server RSS per
//!              connection before, right after, and --duration seconds after
//!              the burst (do buffers shrink back?)
//!   storm      open --conns connections, --inflight (256) at a time, then
//!              close them all (or, with --sigterm-after-open 1, SIGTERM the
//!              server and count its close codes); see storm.rs
//!   joinstorm  the same, each connection joining one room; the time and
//!              the join-reply bytes (storm.rs)
//!
//! Options: --secret (HS256 key for tokens; omit for the reference servers),
//! --pub-url (publisher on another node), --size (message bytes, 100),
//! --sources (127.0.0.x source addresses, 4), --pid (server pid for RSS/CPU),
//! --drain (fanout: seconds to wait for deliveries after the last send, 1).
//!
//! Every scenario reports what went wrong beside its figures: connections
//! that failed to open (`failed`), connections the server closed during the
//! run (`lost`), commands answered with an error or not answered.

mod gql;
mod storm;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone)]
struct Opts {
    scenario: String,
    url: String,
    pub_url: Option<String>,
    secret: Option<String>,
    pid: Option<u32>,
    conns: usize,
    subs: usize,
    rate: u64,
    duration: Duration,
    drain: Duration,
    size: usize,
    sources: u8,
    senders: usize,
    rooms: usize,
    window: usize,
    count: usize,
    inflight: usize,
    sigterm_after_open: bool,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let mut map = HashMap::new();
    let mut i = 2;
    while i + 1 < args.len() {
        map.insert(
            args[i].trim_start_matches("--").to_string(),
            args[i + 1].clone(),
        );
        i += 2;
    }
    let get = |k: &str, d: &str| map.get(k).cloned().unwrap_or_else(|| d.to_string());
    Opts {
        scenario: args.get(1).cloned().unwrap_or_default(),
        url: get("url", "ws://127.0.0.1:8080/ws"),
        pub_url: map.get("pub-url").cloned(),
        secret: map.get("secret").cloned(),
        pid: map.get("pid").and_then(|p| p.parse().ok()),
        conns: get("conns", "1000").parse().unwrap(),
        subs: get("subs", "1000").parse().unwrap(),
        rate: get("rate", "1000").parse().unwrap(),
        duration: Duration::from_secs_f64(get("duration", "10").parse().unwrap()),
        drain: Duration::from_secs_f64(get("drain", "1").parse().unwrap()),
        size: get("size", "100").parse().unwrap(),
        sources: get("sources", "4").parse().unwrap(),
        senders: get("senders", "50").parse().unwrap(),
        rooms: get("rooms", "8").parse::<usize>().unwrap().max(1),
        window: get("window", "32").parse().unwrap(),
        count: get("count", "16").parse().unwrap(),
        inflight: get("inflight", "256").parse().unwrap(),
        sigterm_after_open: get("sigterm-after-open", "0") == "1",
    }
}

fn token(secret: &Option<String>, user: &str) -> String {
    let Some(secret) = secret else {
        return "none".into();
    };
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: u64,
    }
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims { sub: user, exp },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A TCP connection to `url`'s host from 127.0.0.<1 + n % sources>, so one
/// process is not limited by the ephemeral ports of one source address.
async fn bound_stream(url: &str, n: usize, sources: u8) -> Result<tokio::net::TcpStream, String> {
    let without = url.trim_start_matches("ws://");
    let (host, _) = without.split_once('/').unwrap_or((without, ""));
    let addr: SocketAddr = host.parse().map_err(|e| format!("{host}: {e}"))?;
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    let local = IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        1 + (n % sources.max(1) as usize) as u8,
    ));
    socket
        .bind(SocketAddr::new(local, 0))
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Connects to `/ws` from [`bound_stream`]'s source address.
async fn connect(url: &str, token: &str, n: usize, sources: u8) -> Result<Ws, String> {
    let stream = bound_stream(url, n, sources).await?;
    let request = format!("{url}?token={token}");
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Reads frames until the reply with `"id":<id>`: true if it came and said
/// `"ok":true`, false if the connection ended or answered with an error.
async fn until_reply(ws: &mut Ws, id: u64) -> bool {
    let needle = format!("\"id\":{id},");
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg {
            let reply = t.contains("\"type\":\"reply\"");
            if t.contains(&needle) && (reply || t.contains("\"type\":\"error\"")) {
                return reply && t.contains("\"ok\":true");
            }
        }
    }
    false
}

/// Connects, reads `connected`, joins `room`: the connection, or why not.
async fn connect_and_join(
    o: &Opts,
    url: &str,
    user: &str,
    n: usize,
    room: &str,
) -> Result<Ws, String> {
    let mut ws = connect(url, &token(&o.secret, user), n, o.sources).await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with("{\"type\":\"connected\"") => {}
        other => return Err(format!("expected connected, got {other:?}")),
    }
    let join = json!({"type": "room:join", "room": room, "id": 1});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    if until_reply(&mut ws, 1).await {
        Ok(ws)
    } else {
        Err(format!("join {room} not acknowledged"))
    }
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// RSS above `base` per connection, in KiB (null without a pid).
fn per_conn_kib(rss: Option<u64>, base: Option<u64>, conns: usize) -> serde_json::Value {
    match (rss, base) {
        (Some(x), Some(b)) => json!(x.saturating_sub(b) as f64 / conns.max(1) as f64),
        _ => json!(null),
    }
}

/// utime + stime of the process, in seconds (at 100 ticks per second).
fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let o = opts();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, async move {
        match o.scenario.as_str() {
            "idle" => idle(&o).await,
            "handshake" => handshake(&o).await,
            "fanout" => fanout(&o, false).await,
            "gqlfanout" => fanout(&o, true).await,
            "persist" => persist(&o).await,
            "burst" => burst(&o).await,
            "storm" => storm::storm(&o, false).await,
            "joinstorm" => storm::storm(&o, true).await,
            other => json!({"error": format!("unknown scenario {other:?}")}),
        }
    });
    println!("{result}");
}

async fn idle(o: &Opts) -> serde_json::Value {
    let base = rss_kib(o.pid);
    let mut held = Holding::new();
    let mut failed = 0;
    for i in 0..o.conns {
        match connect(&o.url, &token(&o.secret, &format!("idle{i}")), i, o.sources).await {
            Ok(ws) => held.hold(i, ws),
            Err(_) => failed += 1,
        }
    }
    let connected = rss_kib(o.pid);
    let (conns, lost_in_setup) = held.release().await;
    let conns = conns.into_iter().map(|(_, ws)| ws).collect();
    // Stay idle, answering the server's pings.
    let (kept, lost) = idle_until(conns, Instant::now() + o.duration).await;
    let lost = lost + lost_in_setup;
    let after = rss_kib(o.pid);
    let per = |x| per_conn_kib(x, base, kept.len());
    json!({"scenario": "idle", "connections": kept.len(), "failed": failed, "lost": lost,
           "rssKibPerConnAfterConnect": per(connected), "rssKibPerConnAfterIdle": per(after),
           "rssKibBaseline": base})
}

/// Connections opened during a scenario's set-up, each read by a task of
/// its own until `release` hands them back: a connection left unread while
/// thousands of others open does not answer the server's pings, and the
/// server's heartbeat closes it.
struct Holding {
    go: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Option<(usize, Ws)>>>,
}

impl Holding {
    fn new() -> Self {
        Holding {
            go: tokio::sync::watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// Holds `ws`; `release` hands it back with `tag`.
    fn hold(&mut self, tag: usize, mut ws: Ws) {
        let mut go = self.go.subscribe();
        self.tasks.push(tokio::task::spawn_local(async move {
            loop {
                tokio::select! {
                    _ = go.wait_for(|go| *go) => return Some((tag, ws)),
                    msg = ws.next() => match msg {
                        Some(Ok(_)) => {}
                        _ => return None,
                    },
                }
            }
        }));
    }

    /// The connections still open, and how many the server closed meanwhile.
    async fn release(self) -> (Vec<(usize, Ws)>, u64) {
        let _ = self.go.send(true);
        let (mut open, mut closed) = (Vec::with_capacity(self.tasks.len()), 0);
        for t in self.tasks {
            match t.await.unwrap() {
                Some(tagged) => open.push(tagged),
                None => closed += 1,
            }
        }
        (open, closed)
    }
}

/// Reads (answering pings) until `deadline`, then hands the connections back
/// with the number the server closed meanwhile.
async fn idle_until(conns: Vec<Ws>, deadline: Instant) -> (Vec<Ws>, u64) {
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut ws| {
            tokio::task::spawn_local(async move {
                loop {
                    match tokio::time::timeout_at(deadline.into(), ws.next()).await {
                        Ok(Some(Ok(_))) => {}
                        Ok(_) => return (ws, true),
                        Err(_) => return (ws, false),
                    }
                }
            })
        })
        .collect();
    let (mut kept, mut lost) = (Vec::new(), 0);
    for r in readers {
        let (ws, closed) = r.await.unwrap();
        lost += closed as u64;
        kept.push(ws);
    }
    (kept, lost)
}

async fn burst(o: &Opts) -> serde_json::Value {
    let base = rss_kib(o.pid);
    let mut held = Holding::new();
    let mut failed = 0u64;
    for i in 0..o.conns {
        match connect_and_join(
            o,
            &o.url,
            &format!("burst{i}"),
            i,
            &format!("public:burst{i}"),
        )
        .await
        {
            Ok(ws) => held.hold(i, ws),
            Err(_) => failed += 1,
        }
    }
    let before = rss_kib(o.pid);
    let (conns, lost_in_setup) = held.release().await;
    let n = conns.len();
    let content = "x".repeat(o.size);
    let (echoed, refused) = (Rc::new(RefCell::new(0u64)), Rc::new(RefCell::new(0u64)));
    // Each connection is held (read, its pings answered) from the moment its
    // own burst is over: one left unread until the slowest had finished
    // would be closed by the server's heartbeat, rightly.
    let after = Rc::new(RefCell::new(Holding::new()));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(i, ws)| {
            let (echoed, refused, after) = (echoed.clone(), refused.clone(), after.clone());
            let (count, room, content) = (o.count, format!("public:burst{i}"), content.clone());
            tokio::task::spawn_local(async move {
                // Sending and reading at once: a sender that read nothing
                // until it had sent everything could deadlock with a server
                // whose writes back to it are blocked.
                let (mut sink, mut stream) = ws.split();
                // A server that stops reading (a connection it closed
                // half-way) must not hold the sender for ever.
                let send = async {
                    let all = async {
                        for _ in 0..count {
                            let frame =
                                json!({"type": "message:send", "room": room, "content": content});
                            let _ = sink.feed(Message::Text(frame.to_string().into())).await;
                        }
                        let _ = sink.flush().await;
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(30), all).await;
                };
                // Every send is answered by its echo or by an error (e.g. the
                // server's write queue full); the server's pings do not
                // count, so the wait has one deadline, not one per frame.
                let read = async {
                    let (mut got, mut errors) = (0, 0);
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                    while got + errors < count {
                        match tokio::time::timeout_at(deadline, stream.next()).await {
                            Ok(Some(Ok(Message::Text(t)))) => {
                                if t.starts_with("{\"type\":\"message:new\"") {
                                    got += 1
                                } else if t.starts_with("{\"type\":\"error\"") {
                                    errors += 1
                                }
                            }
                            Ok(Some(Ok(_))) => {}
                            _ => break,
                        }
                    }
                    (got, errors)
                };
                let ((), (got, errors)) = futures_util::join!(send, read);
                *echoed.borrow_mut() += got as u64;
                *refused.borrow_mut() += errors as u64;
                after.borrow_mut().hold(
                    i,
                    sink.reunite(stream).expect("the halves of one connection"),
                );
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let after_burst = rss_kib(o.pid);
    tokio::time::sleep(o.duration).await;
    let after_idle = rss_kib(o.pid);
    let holding = Rc::try_unwrap(after)
        .ok()
        .expect("every burst task is done")
        .into_inner();
    let (kept, lost) = holding.release().await;
    let per = |x| per_conn_kib(x, base, n);
    let (echoed, refused) = (*echoed.borrow(), *refused.borrow());
    let lost = lost + lost_in_setup;
    json!({"scenario": "burst", "connections": kept.len(), "failed": failed, "lost": lost,
           "errors": refused,
           "burstKibPerConn": (o.count * o.size) as f64 / 1024.0,
           "echoedPct": 100.0 * echoed as f64 / (n * o.count).max(1) as f64,
           "rssKibPerConnBefore": per(before), "rssKibPerConnAfterBurst": per(after_burst),
           "rssKibPerConnAfterIdle": per(after_idle), "rssKibBaseline": base})
}

async fn handshake(o: &Opts) -> serde_json::Value {
    let done = Rc::new(RefCell::new((0u64, 0u64)));
    let deadline = Instant::now() + o.duration;
    let started = Instant::now();
    let cpu_before = cpu_secs(o.pid);
    let own_before = cpu_secs(Some(std::process::id()));
    let workers: Vec<_> = (0..64)
        .map(|w| {
            let (done, url, secret, sources) = (done.clone(), o.url.clone(), o.secret.clone(), o.sources);
            tokio::task::spawn_local(async move {
                let mut n = w;
                while Instant::now() < deadline {
                    let t = token(&secret, &format!("hs{n}"));
                    // A handshake counts once `connected` has arrived.
                    let ok = match connect(&url, &t, n, sources).await {
                        Ok(mut ws) => {
                            let first = ws.next().await;
                            let _ = ws.close(None).await;
                            matches!(first, Some(Ok(Message::Text(t))) if t.starts_with("{\"type\":\"connected\""))
                        }
                        Err(_) => false,
                    };
                    let mut d = done.borrow_mut();
                    if ok {
                        d.0 += 1;
                    } else {
                        d.1 += 1;
                    }
                    n += 64;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let (ok, failed) = *done.borrow();
    // The server's CPU per handshake: on a machine shared with other work
    // it moves far less than the rate does.
    let cpu = cpu_before
        .zip(cpu_secs(o.pid))
        .map(|(a, b)| (b - a) * 1e6 / ok.max(1) as f64);
    let own = own_before
        .zip(cpu_secs(Some(std::process::id())))
        .map(|(a, b)| 100.0 * (b - a) / secs);
    json!({"scenario": "handshake", "handshakes": ok, "failed": failed, "perSecond": ok as f64 / secs,
           "serverCpuUsPerHandshake": cpu, "generatorCpuPct": own})
}

/// A message's content: the time it was due, as 20 digits of nanoseconds
/// since the generator's base instant, padded to `size`.
fn stamp(due_ns: u64, size: usize) -> String {
    let mut s = format!("{due_ns:020}");
    while s.len() < size {
        s.push('x');
    }
    s
}

fn read_stamp(text: &str) -> Option<u64> {
    let i = text.find("\"content\":\"")? + 11;
    text.get(i..i + 20)?.parse().ok()
}

/// What the subscribers of a fan-out run saw.
#[derive(Default)]
struct Seen {
    delivered: u64,
    last: Option<Instant>,
    /// Subscribers whose connection the server closed (or broke) mid-run.
    lost: u64,
}

/// `fanout`, or with `graphql` `gqlfanout`: the subscribers on `/graphql`.
async fn fanout(o: &Opts, graphql: bool) -> serde_json::Value {
    let scenario = if graphql { "gqlfanout" } else { "fanout" };
    let room = "public:bench";
    let base = Instant::now();
    let hist = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap(),
    ));
    let seen = Rc::new(RefCell::new(Seen::default()));
    // Set-up is not measured; the readers stop at `stop`, set once it is known.
    let stop = Rc::new(RefCell::new(Instant::now() + Duration::from_secs(3600)));
    let (mut subscribers, mut failed) = (0u64, 0u64);
    for i in 0..o.subs {
        let user = format!("sub{i}");
        let subscribed = if graphql {
            gql::subscribe(o, &user, i, room).await
        } else {
            connect_and_join(o, &o.url, &user, i, room).await
        };
        let Ok(mut ws) = subscribed else {
            failed += 1;
            continue;
        };
        subscribers += 1;
        // Read from now on, so no subscriber falls behind during set-up.
        let (hist, seen, stop) = (hist.clone(), seen.clone(), stop.clone());
        tokio::task::spawn_local(async move {
            loop {
                let until = *stop.borrow();
                match tokio::time::timeout_at(until.into(), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        if let Some(due) = read_stamp(&t) {
                            let now = base.elapsed().as_nanos() as u64;
                            let _ = hist
                                .borrow_mut()
                                .record((now.saturating_sub(due) / 1000).max(1));
                            let mut s = seen.borrow_mut();
                            s.delivered += 1;
                            s.last = Some(Instant::now());
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(_) => {
                        seen.borrow_mut().lost += 1;
                        break;
                    }
                    Err(_) => break,
                }
            }
        });
    }
    let pub_url = o.pub_url.clone().unwrap_or_else(|| o.url.clone());
    let mut publisher = match connect_and_join(o, &pub_url, "publisher", 0, room).await {
        Ok(ws) => ws,
        Err(e) => return json!({"scenario": scenario, "error": format!("publisher: {e}")}),
    };
    if graphql {
        if let Err(e) = gql::wait_for_members(&mut publisher, room, subscribers + 1).await {
            return json!({"scenario": scenario, "error": e});
        }
    }
    let total = (o.rate as f64 * o.duration.as_secs_f64()).round() as u64;
    let expected = total * subscribers;
    let cpu_before = cpu_secs(o.pid);
    let own_cpu_before = cpu_secs(Some(std::process::id()));
    // Open loop: every millisecond, the messages due by now, each stamped
    // with the time it was due.
    let started = Instant::now();
    let start_ns = started.duration_since(base).as_nanos() as u64;
    let due_ns = |i: u64| start_ns + (i as f64 * 1e9 / o.rate as f64) as u64;
    let end_by = started + o.duration + o.drain;
    *stop.borrow_mut() = end_by;
    let (mut sent, mut max_lag_ns) = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let (mut sink, mut stream) = publisher.split();
    // The publisher's own copies are read and dropped.
    tokio::task::spawn_local(async move {
        while let Ok(Some(_)) = tokio::time::timeout_at(end_by.into(), stream.next()).await {}
    });
    'publish: while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * o.rate as f64) as u64 + 1).min(total);
        while sent < due {
            let at = due_ns(sent);
            max_lag_ns = max_lag_ns.max((base.elapsed().as_nanos() as u64).saturating_sub(at));
            let frame = json!({"type": "message:send", "room": room, "content": stamp(at, o.size)});
            if sink
                .feed(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                break 'publish;
            }
            sent += 1;
        }
        let _ = sink.flush().await;
    }
    let published = Instant::now();
    // The drain: wait until every delivery arrived, or --drain has passed.
    while seen.borrow().delivered < expected && Instant::now() < end_by {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ended = Instant::now();
    let cpu = match (cpu_before, cpu_secs(o.pid)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let own_cpu = own_cpu_before
        .zip(cpu_secs(Some(std::process::id())))
        .map(|(a, b)| b - a);
    let s = seen.borrow();
    let got = s.delivered;
    let last = s.last.unwrap_or(started);
    // Deliveries per second over the whole time they took: from the first
    // send to the last delivery, the drain included.
    let span = last
        .duration_since(started)
        .as_secs_f64()
        .max(o.duration.as_secs_f64());
    let h = hist.borrow();
    json!({"scenario": scenario, "subscribers": subscribers, "failed": failed, "lost": s.lost,
           "rate": o.rate, "sent": sent, "scheduled": total,
           "offeredPerSecond": (total * subscribers) as f64 / o.duration.as_secs_f64(),
           "deliveries": got, "deliveredPct": 100.0 * got as f64 / expected.max(1) as f64,
           "deliveriesPerSecond": got as f64 / span,
           "drainMs": last.saturating_duration_since(published).as_secs_f64() * 1e3,
           "publishLagMaxUs": max_lag_ns / 1000,
           "p50us": h.value_at_quantile(0.50), "p99us": h.value_at_quantile(0.99), "p999us": h.value_at_quantile(0.999),
           "maxUs": h.max(),
           "serverCpuUsPerDelivery": cpu.map(|c| c * 1e6 / got.max(1) as f64),
           "generatorCpuPct": own_cpu.map(|c| 100.0 * c / ended.duration_since(started).as_secs_f64())})
}

async fn persist(o: &Opts) -> serde_json::Value {
    #[derive(Default)]
    struct Counts {
        acked: u64,
        errors: u64,
        unanswered: u64,
        lost: u64,
    }
    let counts = Rc::new(RefCell::new(Counts::default()));
    let mut failed = 0u64;
    let mut conns = Vec::new();
    for s in 0..o.senders {
        let room = format!("public:persist{}", s % o.rooms);
        match connect_and_join(o, &o.url, &format!("writer{s}"), s, &room).await {
            Ok(ws) => conns.push((ws, room)),
            Err(_) => failed += 1,
        }
    }
    let deadline = Instant::now() + o.duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (ws, room) in conns {
        let (counts, window) = (counts.clone(), o.window);
        tasks.push(tokio::task::spawn_local(async move {
            let (mut sink, mut stream) = ws.split();
            let mut next_id = 2u64;
            let mut in_flight = 0u64;
            loop {
                while in_flight < window as u64 && Instant::now() < deadline {
                    let frame = json!({"type": "message:send", "room": room, "content": "persisted", "id": next_id});
                    if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                        break;
                    }
                    next_id += 1;
                    in_flight += 1;
                }
                if in_flight == 0 {
                    return;
                }
                match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        let mut c = counts.borrow_mut();
                        if t.starts_with("{\"type\":\"reply\"") {
                            in_flight -= 1;
                            c.acked += 1;
                        } else if t.starts_with("{\"type\":\"error\"") {
                            in_flight -= 1;
                            c.errors += 1;
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    end => {
                        let mut c = counts.borrow_mut();
                        c.unanswered += in_flight;
                        c.lost += end.is_ok() as u64;
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let c = counts.borrow();
    json!({"scenario": "persist", "senders": o.senders, "failed": failed, "lost": c.lost, "acked": c.acked,
           "errors": c.errors, "unanswered": c.unanswered, "ackedPerSecond": c.acked as f64 / secs})
}
