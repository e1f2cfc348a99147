//! Process-wide counters, rendered by `/metrics` in the OpenMetrics text
//! format through `prometheus-client` (the Prometheus project's Rust
//! client), and as JSON by `/admin/stats`. Its counters are atomics: every
//! worker and actor bumps them without a lock.

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::errors::{CloseCause, Refused};
use crate::mailbox::Bound;

/// Refused handshakes by reason.
#[derive(Clone)]
pub struct Refusals(Family<Vec<(String, String)>, Counter>);

impl Default for Refusals {
    fn default() -> Self {
        let family = Family::default();
        for reason in Refused::ALL {
            let _ = family.get_or_create(&Self::labels(reason));
        }
        Refusals(family)
    }
}

impl Refusals {
    fn labels(reason: Refused) -> Vec<(String, String)> {
        vec![("reason".to_string(), reason.label().to_string())]
    }

    pub fn count(&self, reason: Refused) {
        self.0.get_or_create(&Self::labels(reason)).inc();
    }
}

/// Ended connections by cause, every cause present from the start.
#[derive(Clone)]
pub struct Closes(Family<Vec<(String, String)>, Counter>);

impl Default for Closes {
    fn default() -> Self {
        let family = Family::default();
        for cause in CloseCause::ALL {
            let _ = family.get_or_create(&Self::labels(cause));
        }
        Closes(family)
    }
}

impl Closes {
    fn labels(cause: CloseCause) -> Vec<(String, String)> {
        vec![("reason".to_string(), cause.label().to_string())]
    }

    pub fn count(&self, cause: CloseCause) {
        self.0.get_or_create(&Self::labels(cause)).inc();
    }
}

/// A latency histogram in seconds, with buckets from 0.5 ms to ~16 s.
#[derive(Clone)]
pub struct Seconds(Histogram);

impl Default for Seconds {
    fn default() -> Self {
        Seconds(Histogram::new(exponential_buckets(0.0005, 2.0, 16)))
    }
}

impl Seconds {
    pub fn observe(&self, d: std::time::Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

/// Messages put in the sessions' mailboxes and messages they have taken
/// out; the difference is how many wait (summed over every session, counted
/// in one place: `actors::conn::ConnHandle`).
#[derive(Default)]
pub struct MailboxGauge {
    sent: AtomicU64,
    handled: AtomicU64,
}

impl MailboxGauge {
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    pub fn handled(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }
    /// `n` messages were discarded unhandled (their actor stopped).
    pub fn discarded(&self, n: u64) {
        self.handled.fetch_add(n, Ordering::Relaxed);
    }
    pub fn depth(&self) -> u64 {
        let handled = self.handled.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(handled)
    }
}

#[derive(Default)]
pub struct Metrics {
    pub connections_opened: Counter,
    pub connections_closed: Counter,
    /// By reason (`errors::Refused`), every reason present from the start.
    pub handshakes_refused: Refusals,
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub commands: Counter,
    pub command_errors: Counter,
    pub rate_limited: Counter,
    pub flood_closes: Counter,
    pub slow_consumer_closes: Counter,
    pub heartbeat_closes: Counter,
    pub token_expired_closes: Counter,
    pub kicks: Counter,
    pub notifications: Counter,
    pub broadcasts: Counter,
    pub db_write_batches: Counter,
    pub db_written_messages: Counter,
    pub db_errors: Counter,
    pub records_written: Counter,
    pub records_dropped: Counter,
    /// Background records that found the queue full and waited in line.
    pub records_waited: Counter,
    pub handshakes_held: Counter,
    pub redis_publish_errors: Counter,
    pub cluster_gaps_filled: Counter,
    pub session_mailbox: MailboxGauge,
    /// From the upgrade request's arrival to the answer that starts the
    /// session (checks, token, waiting for the record queue and registry).
    pub handshake_seconds: Seconds,
    /// One group-commit transaction of messages, from start to commit.
    pub db_commit_seconds: Seconds,
    /// A message of this node, from its acceptance (`message:send` or
    /// `POST /admin/rooms/{room}/messages`) to its handover to each
    /// recipient's mailbox on this node: one observation per recipient.
    pub publish_deliver_seconds: Seconds,
    /// Ended connections by cause (`errors::CloseCause`).
    pub closes: Closes,
    /// The bound mailboxes (registry, tracker, bridge), by actor name.
    mailboxes: Mutex<Vec<(&'static str, Bound)>>,
}

impl Metrics {
    /// Reports the depth of `actor`'s mailbox from now on.
    pub fn watch_mailbox(&self, actor: &'static str, bound: &Bound) {
        let mut list = self.mailboxes.lock().expect("metrics lock");
        list.push((actor, bound.clone()));
    }

    /// Messages waiting in `actor`'s mailbox (0 for one not running).
    pub fn mailbox_depth(&self, actor: &str) -> u64 {
        let list = self.mailboxes.lock().expect("metrics lock");
        list.iter()
            .find(|(name, _)| *name == actor)
            .map_or(0, |(_, b)| b.depth() as u64)
    }
}

pub fn inc(counter: &Counter) {
    counter.inc();
}

pub fn add(counter: &Counter, n: u64) {
    counter.inc_by(n);
}

pub fn get(counter: &Counter) -> u64 {
    counter.get()
}

/// Figures that are not counters kept here: supplied by the caller.
pub struct Gauges {
    pub connections: u64,
    pub users: u64,
    pub rooms: u64,
}

impl Metrics {
    pub fn connections(&self) -> u64 {
        get(&self.connections_opened).saturating_sub(get(&self.connections_closed))
    }

    /// Every series, in the OpenMetrics text format (`prometheus-client`'s
    /// encoder), each with the label `node`.
    pub fn render(&self, node: &str, g: &Gauges) -> String {
        let labels = [(Cow::Borrowed("node"), Cow::Owned(node.to_string()))];
        let mut reg = Registry::with_labels(labels.into_iter());
        let gauge = |value: u64| {
            let gauge = Gauge::<i64, AtomicI64>::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            gauge
        };
        reg.register(
            "realtime_connections",
            "Open WebSocket connections",
            gauge(g.connections),
        );
        reg.register("realtime_users", "Distinct users connected", gauge(g.users));
        reg.register(
            "realtime_rooms",
            "Rooms with at least one member",
            gauge(g.rooms),
        );
        let counters: [(&str, &str, &Counter); 23] = [
            (
                "connections_opened",
                "WebSocket connections accepted.",
                (&self.connections_opened),
            ),
            (
                "connections_closed",
                "WebSocket connections ended.",
                (&self.connections_closed),
            ),
            (
                "messages_in",
                "Chat messages accepted from clients.",
                (&self.messages_in),
            ),
            (
                "messages_out",
                "Events delivered to sessions.",
                (&self.messages_out),
            ),
            ("commands", "Commands received.", (&self.commands)),
            (
                "command_errors",
                "Commands answered with an error.",
                (&self.command_errors),
            ),
            (
                "rate_limited",
                "Commands refused with RATE_LIMITED.",
                (&self.rate_limited),
            ),
            (
                "flood_closes",
                "Connections closed with 4008 for flooding.",
                (&self.flood_closes),
            ),
            (
                "slow_consumer_closes",
                "Connections closed with 4009 as slow consumers.",
                (&self.slow_consumer_closes),
            ),
            (
                "heartbeat_closes",
                "Connections closed with 4010 (heartbeat timeout).",
                (&self.heartbeat_closes),
            ),
            (
                "token_expired_closes",
                "Connections closed with 4001 (token expired).",
                (&self.token_expired_closes),
            ),
            (
                "kicks",
                "Connections closed with 4003 by an administrator.",
                (&self.kicks),
            ),
            (
                "notifications",
                "Notifications sent through the admin API.",
                (&self.notifications),
            ),
            (
                "broadcasts",
                "Broadcasts sent through the admin API.",
                (&self.broadcasts),
            ),
            (
                "db_write_batches",
                "Message transactions attempted by the group-commit writer.",
                (&self.db_write_batches),
            ),
            (
                "db_written_messages",
                "Messages written by the group-commit writer.",
                (&self.db_written_messages),
            ),
            (
                "db_errors",
                "Database writes that failed or timed out.",
                (&self.db_errors),
            ),
            (
                "records_written",
                "Background records written (connections, membership, presence, audit).",
                (&self.records_written),
            ),
            (
                "records_dropped",
                "Background records dropped because their queue and its waiting line were full.",
                (&self.records_dropped),
            ),
            (
                "records_waited",
                "Background records that found their queue full and waited in line for room.",
                (&self.records_waited),
            ),
            (
                "handshakes_held",
                "Upgrades that waited for room in the background record queue.",
                (&self.handshakes_held),
            ),
            (
                "redis_publish_errors",
                "Events for other nodes that could not be published.",
                (&self.redis_publish_errors),
            ),
            (
                "cluster_gaps_filled",
                "Times missing seqs from other nodes were read from the database.",
                (&self.cluster_gaps_filled),
            ),
        ];
        for (name, help, counter) in counters {
            reg.register(
                format!("realtime_{name}"),
                help.trim_end_matches('.'),
                counter.clone(),
            );
        }
        reg.register(
            "realtime_handshake_seconds",
            "Time to accept a WebSocket upgrade: checks, token, waits for the record queue and the registry",
            self.handshake_seconds.0.clone(),
        );
        reg.register(
            "realtime_db_commit_seconds",
            "Time of one group-commit transaction of messages",
            self.db_commit_seconds.0.clone(),
        );
        reg.register(
            "realtime_publish_deliver_seconds",
            "Time from a message's acceptance to its handover to each recipient on this node (commit and ordering included)",
            self.publish_deliver_seconds.0.clone(),
        );
        reg.register(
            "realtime_closes",
            "Connections ended, by cause",
            self.closes.0.clone(),
        );
        reg.register(
            "realtime_handshakes_refused",
            "Upgrades refused, by reason",
            self.handshakes_refused.0.clone(),
        );
        let mailboxes = self.mailboxes.lock().expect("metrics lock").clone();
        let per_actor = || Family::<Vec<(String, String)>, Gauge>::default();
        let actor = |name: &str| vec![("actor".to_string(), name.to_string())];
        let (depth, capacity) = (per_actor(), per_actor());
        let refused = Family::<Vec<(String, String)>, Counter>::default();
        depth
            .get_or_create(&actor("session"))
            .set(self.session_mailbox.depth() as i64);
        for (name, bound) in &mailboxes {
            depth.get_or_create(&actor(name)).set(bound.depth() as i64);
            capacity
                .get_or_create(&actor(name))
                .set(bound.capacity() as i64);
            refused.get_or_create(&actor(name)).inc_by(bound.refused());
        }
        reg.register(
            "realtime_mailbox_depth",
            "Messages waiting in actor mailboxes (session: summed over all sessions)",
            depth,
        );
        reg.register(
            "realtime_mailbox_capacity",
            "The configured bound of each actor mailbox",
            capacity,
        );
        reg.register(
            "realtime_mailbox_refused",
            "Messages refused because the actor's mailbox was full (the command got UNAVAILABLE, or a relay event was dropped)",
            refused,
        );
        reg.register(
            "realtime_build",
            "The running build",
            Info::new(vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]),
        );
        process_series(&mut reg);
        let mut out = String::with_capacity(8192);
        if encode(&mut out, &reg).is_err() {
            log::error!("metrics could not be encoded");
        }
        out
    }
}

/// The standard `process_*` series (as Prometheus's own clients name them),
/// read from `/proc/self`; those that cannot be read are left out.
fn process_series(reg: &mut Registry) {
    let mut gauge = |name: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(v);
            reg.register(name, help, g);
        }
    };
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let ticks = 100.0; // USER_HZ on Linux
    let page = 4096.0;
    gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        field(24).map(|p| p * page),
    );
    gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        field(23),
    );
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds",
        boot.zip(field(22)).map(|(b, start)| b + start / ticks),
    );
    let fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    gauge("process_open_fds", "Number of open file descriptors", fds);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        });
    gauge(
        "process_max_fds",
        "Maximum number of open file descriptors",
        max_fds,
    );
    if let Some(cpu) = field(14).zip(field(15)).map(|(u, s)| (u + s) / ticks) {
        let c = Counter::<f64, AtomicU64>::default();
        c.inc_by(cpu);
        reg.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            c,
        );
    }
}
