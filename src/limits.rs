//! Admission and rate limits: the per-user command budget, the per-IP
//! connection rate, the per-user and per-node connection counts, and the
//! per-room send rates ([`RoomRates`]).
//!
//! All but the last are shared by every worker thread, so a user's
//! connections share one budget and reconnecting does not reset it; the
//! room rates belong to the room registry, which sees every message.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::auth::pattern_matches;
use crate::config::{Limits, RateLimits};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).expect("at least 1");
    let burst = NonZeroU32::new(burst.max(per_second).max(1)).expect("at least 1");
    Quota::per_second(rate).allow_burst(burst)
}

/// Token buckets keyed by user (commands) and by IP address (handshakes).
pub struct RateLimiters {
    commands: Keyed<Arc<str>>,
    connections: Keyed<IpAddr>,
    clock: DefaultClock,
}

impl RateLimiters {
    pub fn new(cfg: &RateLimits) -> Self {
        RateLimiters {
            commands: RateLimiter::keyed(quota(cfg.commands_per_second, cfg.commands_burst)),
            connections: RateLimiter::keyed(quota(
                cfg.connections_per_ip_per_second,
                cfg.connections_per_ip_burst,
            )),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when the user is over budget.
    pub fn check_command(&self, user: &Arc<str>) -> Result<(), Duration> {
        self.commands
            .check_key(user)
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// `Err(wait)` when the address opens connections too fast.
    pub fn check_connection(&self, ip: IpAddr) -> Result<(), Duration> {
        self.connections
            .check_key(&ip)
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// Forgets buckets that are full again, so idle keys cost no memory.
    pub fn shrink(&self) {
        self.commands.retain_recent();
        self.commands.shrink_to_fit();
        self.connections.retain_recent();
        self.connections.shrink_to_fit();
    }
}

/// A bucket's key: (room, user).
type RoomUser = (Arc<str>, Arc<str>);

/// Per-room send rates: a user's messages per second in one room, from the
/// room's own `rateLimit` (managed rooms) or the longest matching pattern
/// of `rooms.rate_limits`. governor's quota is one per limiter, so there is
/// one limiter keyed by (room, user) per distinct rate. Memory stays
/// bounded: buckets that are full again are forgotten every
/// [`RoomRates::SHRINK_EVERY`] checks (and by [`RoomRates::shrink`]), so
/// only the pairs that sent within about a second are kept.
pub struct RoomRates {
    /// (pattern, per second), longest pattern first.
    patterns: Vec<(String, u32)>,
    limiters: HashMap<u32, Keyed<RoomUser>>,
    clock: DefaultClock,
    checks: usize,
}

impl RoomRates {
    pub const SHRINK_EVERY: usize = 4096;

    pub fn new(patterns: &BTreeMap<String, u32>) -> Self {
        let mut patterns: Vec<(String, u32)> = patterns
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        patterns.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        RoomRates {
            patterns,
            limiters: HashMap::new(),
            clock: DefaultClock::default(),
            checks: 0,
        }
    }

    /// The rate of `room`: `own` (a managed room's `rateLimit`), else the
    /// longest matching pattern's, else none.
    pub fn rate_for(&self, room: &str, own: Option<u32>) -> Option<u32> {
        own.filter(|n| *n > 0).or_else(|| {
            self.patterns
                .iter()
                .find(|(p, _)| pattern_matches(p, room))
                .map(|(_, n)| *n)
        })
    }

    /// `Err(wait)` when `user` sent `per_second` messages in `room` already.
    pub fn check(
        &mut self,
        room: &Arc<str>,
        user: &Arc<str>,
        per_second: u32,
    ) -> Result<(), Duration> {
        self.checks += 1;
        if self.checks.is_multiple_of(Self::SHRINK_EVERY) {
            self.shrink();
        }
        let limiter = self
            .limiters
            .entry(per_second)
            .or_insert_with(|| RateLimiter::keyed(quota(per_second, per_second)));
        limiter
            .check_key(&(room.clone(), user.clone()))
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// Forgets full buckets, and limiters with none left.
    pub fn shrink(&mut self) {
        self.limiters.retain(|_, limiter| {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            !limiter.is_empty()
        });
    }

    /// Buckets kept (for tests and metrics).
    pub fn len(&self) -> usize {
        self.limiters.values().map(|l| l.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum AdmitError {
    NodeFull(usize),
    UserFull(usize),
}

/// Counts open connections per user and in all.
pub struct ConnectionCounter {
    per_user: Mutex<HashMap<Arc<str>, usize>>,
    total: AtomicUsize,
    max_total: usize,
    max_per_user: usize,
}

impl ConnectionCounter {
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(ConnectionCounter {
            per_user: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            max_total: limits.max_connections,
            max_per_user: limits.max_connections_per_user,
        })
    }

    /// Takes a slot for `user`; the slot is given back when the guard drops,
    /// whichever way the connection ends.
    pub fn admit(self: &Arc<Self>, user: &Arc<str>) -> Result<ConnectionGuard, AdmitError> {
        let mut per_user = self.per_user.lock().expect("counter lock");
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(AdmitError::NodeFull(self.max_total));
        }
        let count = per_user.entry(user.clone()).or_insert(0);
        if *count >= self.max_per_user {
            return Err(AdmitError::UserFull(self.max_per_user));
        }
        *count += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionGuard {
            counter: self.clone(),
            user: user.clone(),
        })
    }

    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub fn users(&self) -> usize {
        self.per_user.lock().expect("counter lock").len()
    }
}

pub struct ConnectionGuard {
    counter: Arc<ConnectionCounter>,
    user: Arc<str>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut per_user = self.counter.per_user.lock().expect("counter lock");
        if let Some(count) = per_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user);
            }
        }
        self.counter.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// At most `per_second` log lines a second for a kind of event that can
/// come in floods (refused handshakes): each second's first ones are
/// logged, the rest counted and reported with the next line logged.
pub struct LogBudget {
    per_second: u32,
    state: std::sync::Mutex<(Option<std::time::Instant>, u32, u64)>,
}

impl LogBudget {
    pub fn new(per_second: u32) -> Self {
        LogBudget {
            per_second,
            state: std::sync::Mutex::new((None, 0, 0)),
        }
    }

    /// `Some(n)` when this event may be logged, `n` being how many were
    /// not logged since the last one that was; `None` when over budget.
    pub fn admit(&self, now: std::time::Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (start, used, skipped) = &mut *state;
        if start.is_none_or(|s| now.duration_since(s) >= std::time::Duration::from_secs(1)) {
            *start = Some(now);
            *used = 0;
        }
        if *used < self.per_second {
            *used += 1;
            Some(std::mem::take(skipped))
        } else {
            *skipped += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_budget_logs_the_first_of_each_second_and_counts_the_rest() {
        let budget = LogBudget::new(2);
        let t0 = std::time::Instant::now();
        assert_eq!(budget.admit(t0), Some(0));
        assert_eq!(budget.admit(t0), Some(0));
        assert_eq!(budget.admit(t0), None);
        assert_eq!(budget.admit(t0 + Duration::from_millis(500)), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(budget.admit(t1), Some(2), "two were not logged");
        assert_eq!(budget.admit(t1), Some(0));
    }
    use crate::config::Settings;

    #[test]
    fn room_rates_come_from_the_room_then_the_longest_pattern() {
        let patterns: BTreeMap<String, u32> = [("*".into(), 50), ("support:*".into(), 1)]
            .into_iter()
            .collect();
        let rates = RoomRates::new(&patterns);
        assert_eq!(rates.rate_for("support:7", None), Some(1));
        assert_eq!(rates.rate_for("team:1", None), Some(50));
        assert_eq!(rates.rate_for("support:7", Some(3)), Some(3));
        assert_eq!(RoomRates::new(&BTreeMap::new()).rate_for("x", None), None);
    }

    #[test]
    fn room_rates_are_per_room_and_user_and_forget_idle_buckets() {
        let mut rates = RoomRates::new(&BTreeMap::new());
        let (r1, r2): (Arc<str>, Arc<str>) = ("r1".into(), "r2".into());
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(rates.check(&r1, &a, 1).is_ok());
        let wait = rates.check(&r1, &a, 1).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(rates.check(&r1, &b, 1).is_ok(), "another user");
        assert!(rates.check(&r2, &a, 1).is_ok(), "another room");
        assert!(rates.check(&r2, &b, 5).is_ok(), "another rate");
        assert_eq!(rates.len(), 4);
        rates.shrink();
        // every bucket was used within the second: kept
        assert!(rates.len() <= 4);
    }

    #[test]
    fn command_budget_is_per_user_and_reports_the_wait() {
        let mut cfg = Settings::load_from(&[]).unwrap().rate_limits;
        cfg.commands_per_second = 2;
        cfg.commands_burst = 3;
        let limiters = RateLimiters::new(&cfg);
        let alice: Arc<str> = "alice".into();
        let bob: Arc<str> = "bob".into();
        for _ in 0..3 {
            assert!(limiters.check_command(&alice).is_ok());
        }
        let wait = limiters.check_command(&alice).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // A different user has a budget of their own.
        assert!(limiters.check_command(&bob).is_ok());
        // The same user through another Arc shares the budget.
        assert!(limiters.check_command(&Arc::from("alice")).is_err());
    }

    #[test]
    fn connection_rate_is_per_address() {
        let mut cfg = Settings::load_from(&[]).unwrap().rate_limits;
        cfg.connections_per_ip_per_second = 1;
        cfg.connections_per_ip_burst = 1;
        let limiters = RateLimiters::new(&cfg);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limiters.check_connection(a).is_ok());
        assert!(limiters.check_connection(a).is_err());
        assert!(limiters.check_connection(b).is_ok());
    }

    #[test]
    fn counter_limits_and_releases_on_drop() {
        let mut limits = Settings::load_from(&[]).unwrap().limits;
        limits.max_connections = 3;
        limits.max_connections_per_user = 2;
        let counter = ConnectionCounter::new(&limits);
        let alice: Arc<str> = "alice".into();
        let g1 = counter.admit(&alice).unwrap();
        let _g2 = counter.admit(&alice).unwrap();
        assert_eq!(counter.admit(&alice).err(), Some(AdmitError::UserFull(2)));
        let _g3 = counter.admit(&"bob".into()).unwrap();
        assert_eq!(
            counter.admit(&"carol".into()).err(),
            Some(AdmitError::NodeFull(3))
        );
        drop(g1);
        assert_eq!(counter.total(), 2);
        assert!(counter.admit(&alice).is_ok());
        assert_eq!(counter.users(), 2);
    }
}
