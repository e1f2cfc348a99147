//! Process-wide counters, rendered as Prometheus text by `/metrics` and as
//! JSON by `/admin/stats`. Plain atomics: every worker and actor bumps them
//! without a lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::mailbox::Bound;

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
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub handshakes_refused: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub commands: AtomicU64,
    pub command_errors: AtomicU64,
    pub rate_limited: AtomicU64,
    pub flood_closes: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub heartbeat_closes: AtomicU64,
    pub token_expired_closes: AtomicU64,
    pub kicks: AtomicU64,
    pub notifications: AtomicU64,
    pub broadcasts: AtomicU64,
    pub db_write_batches: AtomicU64,
    pub db_written_messages: AtomicU64,
    pub db_errors: AtomicU64,
    pub records_written: AtomicU64,
    pub records_dropped: AtomicU64,
    /// Background records that found the queue full and waited in line.
    pub records_waited: AtomicU64,
    pub handshakes_held: AtomicU64,
    pub redis_publish_errors: AtomicU64,
    pub cluster_gaps_filled: AtomicU64,
    pub session_mailbox: MailboxGauge,
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

/// One per-actor series of the bound mailboxes: name, type, help, value.
type MailboxSeries = (&'static str, &'static str, &'static str, fn(&Bound) -> u64);

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
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

    pub fn render(&self, node: &str, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP realtime_{name} {help}");
            let _ = writeln!(out, "# TYPE realtime_{name} gauge");
            let _ = writeln!(out, "realtime_{name}{{node=\"{node}\"}} {value}");
        };
        gauge("connections", "Open WebSocket connections.", g.connections);
        gauge("users", "Distinct users connected.", g.users);
        gauge("rooms", "Rooms with at least one member.", g.rooms);
        let c = |a: &AtomicU64| get(a);
        let counters = [
            (
                "connections_opened",
                "WebSocket connections accepted.",
                c(&self.connections_opened),
            ),
            (
                "connections_closed",
                "WebSocket connections ended.",
                c(&self.connections_closed),
            ),
            (
                "handshakes_refused",
                "Upgrades refused (auth, origin, limits).",
                c(&self.handshakes_refused),
            ),
            (
                "messages_in",
                "Chat messages accepted from clients.",
                c(&self.messages_in),
            ),
            (
                "messages_out",
                "Events delivered to sessions.",
                c(&self.messages_out),
            ),
            ("commands", "Commands received.", c(&self.commands)),
            (
                "command_errors",
                "Commands answered with an error.",
                c(&self.command_errors),
            ),
            (
                "rate_limited",
                "Commands refused with RATE_LIMITED.",
                c(&self.rate_limited),
            ),
            (
                "flood_closes",
                "Connections closed with 4008 for flooding.",
                c(&self.flood_closes),
            ),
            (
                "slow_consumer_closes",
                "Connections closed with 4009 as slow consumers.",
                c(&self.slow_consumer_closes),
            ),
            (
                "heartbeat_closes",
                "Connections closed with 4010 (heartbeat timeout).",
                c(&self.heartbeat_closes),
            ),
            (
                "token_expired_closes",
                "Connections closed with 4001 (token expired).",
                c(&self.token_expired_closes),
            ),
            (
                "kicks",
                "Connections closed with 4003 by an administrator.",
                c(&self.kicks),
            ),
            (
                "notifications",
                "Notifications sent through the admin API.",
                c(&self.notifications),
            ),
            (
                "broadcasts",
                "Broadcasts sent through the admin API.",
                c(&self.broadcasts),
            ),
            (
                "db_write_batches",
                "Message transactions attempted by the group-commit writer.",
                c(&self.db_write_batches),
            ),
            (
                "db_written_messages",
                "Messages written by the group-commit writer.",
                c(&self.db_written_messages),
            ),
            (
                "db_errors",
                "Database writes that failed or timed out.",
                c(&self.db_errors),
            ),
            (
                "records_written",
                "Background records written (connections, membership, presence, audit).",
                c(&self.records_written),
            ),
            (
                "records_dropped",
                "Background records dropped because their queue and its waiting line were full.",
                c(&self.records_dropped),
            ),
            (
                "records_waited",
                "Background records that found their queue full and waited in line for room.",
                c(&self.records_waited),
            ),
            (
                "handshakes_held",
                "Upgrades that waited for room in the background record queue.",
                c(&self.handshakes_held),
            ),
            (
                "redis_publish_errors",
                "Events for other nodes that could not be published.",
                c(&self.redis_publish_errors),
            ),
            (
                "cluster_gaps_filled",
                "Times missing seqs from other nodes were read from the database.",
                c(&self.cluster_gaps_filled),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP realtime_{name}_total {help}");
            let _ = writeln!(out, "# TYPE realtime_{name}_total counter");
            let _ = writeln!(out, "realtime_{name}_total{{node=\"{node}\"}} {value}");
        }
        let mailboxes = self.mailboxes.lock().expect("metrics lock").clone();
        let _ = writeln!(out, "# HELP realtime_mailbox_depth Messages waiting in actor mailboxes (session: summed over all sessions).");
        let _ = writeln!(out, "# TYPE realtime_mailbox_depth gauge");
        let _ = writeln!(
            out,
            "realtime_mailbox_depth{{node=\"{node}\",actor=\"session\"}} {}",
            self.session_mailbox.depth()
        );
        let series: [MailboxSeries; 2] = [
            (
                "realtime_mailbox_capacity",
                "gauge",
                "The configured bound of each actor mailbox.",
                |b| b.capacity() as u64,
            ),
            (
                "realtime_mailbox_refused_total",
                "counter",
                "Messages refused because the actor's mailbox was full (the command got UNAVAILABLE, or a relay event was dropped).",
                Bound::refused,
            ),
        ];
        for (actor, bound) in &mailboxes {
            let depth = bound.depth();
            let _ = writeln!(
                out,
                "realtime_mailbox_depth{{node=\"{node}\",actor=\"{actor}\"}} {depth}"
            );
        }
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (actor, bound) in &mailboxes {
                let v = value(bound);
                let _ = writeln!(out, "{name}{{node=\"{node}\",actor=\"{actor}\"}} {v}");
            }
        }
        let version = env!("CARGO_PKG_VERSION");
        let _ = writeln!(
            out,
            "# HELP realtime_build_info The running build: always 1."
        );
        let _ = writeln!(out, "# TYPE realtime_build_info gauge");
        let _ = writeln!(
            out,
            "realtime_build_info{{node=\"{node}\",version=\"{version}\"}} 1"
        );
        process_series(&mut out);
        out
    }
}

/// The standard `process_*` series (as Prometheus's own clients name them),
/// read from `/proc/self`; those that cannot be read are left out.
fn process_series(out: &mut String) {
    let mut series = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {v}");
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
    let cpu = field(14).zip(field(15)).map(|(u, s)| (u + s) / ticks);
    series(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        cpu,
    );
    series(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        field(24).map(|p| p * page),
    );
    series(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        field(23),
    );
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    series(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
        boot.zip(field(22)).map(|(b, start)| b + start / ticks),
    );
    let fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    series(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        fds,
    );
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        });
    series(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max_fds,
    );
}
