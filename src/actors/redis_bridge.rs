//! The RedisBridge actor: relays between this node's RoomRegistry and the
//! other nodes through Redis.
//!
//! - Outbound: the registry hands it typed [`ClusterEvent`]s with
//!   `try_send`; one publisher task sends them in order, pipelined, through
//!   the `deadpool-redis` pool.
//! - Inbound: a dedicated pub/sub connection, subscribed to `<prefix>:all`,
//!   `<prefix>:node:<self>` and the rooms with local members; events go to the
//!   registry, answers to admin requests are gathered here.
//! - Liveness: every `redis.heartbeat_ms` the node refreshes its key
//!   `<prefix>:alive:<node>` (expiring after `redis.node_ttl_ms`) and checks
//!   the keys of the nodes it knows; a node whose key is gone (or holds a new
//!   boot id) is dead and the registry drops its presence.
//! - Redis down: publishing fails and is counted, the pub/sub connection is
//!   retried with backoff, and on reconnection the node resubscribes and
//!   says `Hello`, so every node re-sends its presence snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use deadpool_redis::redis::{self, aio::PubSubSink};
use deadpool_redis::{Pool, PoolConfig, Runtime};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::messages::{Depart, Follow, FromCluster, Gather, NodeGone, Relay};
use crate::cluster::{AdminAnswer, AdminOp, Channel, Cluster, ClusterEvent, Envelope};
use crate::config::RedisSettings;
use crate::mailbox::{Mailbox, Peer};
use crate::metrics::{inc, Metrics};

/// Longest wait for one Redis command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Events published in one pipeline at most.
const PUBLISH_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub url: String,
    pub prefix: String,
    pub node_id: Arc<str>,
    pub boot_id: Arc<str>,
    pub pool_size: usize,
    pub heartbeat: Duration,
    pub node_ttl: Duration,
    pub gather_timeout: Duration,
    pub reconnect_max: Duration,
    pub mailbox: usize,
}

impl BridgeConfig {
    pub fn from_settings(s: &RedisSettings, node_id: &str, mailbox: usize) -> Self {
        BridgeConfig {
            url: s.url.clone(),
            prefix: s.prefix.clone(),
            node_id: node_id.into(),
            boot_id: uuid::Uuid::new_v4().simple().to_string().into(),
            pool_size: s.pool_size.max(1),
            heartbeat: s.heartbeat,
            node_ttl: s.node_ttl,
            gather_timeout: s.gather_timeout,
            reconnect_max: s.reconnect_max_backoff.max(Duration::from_millis(100)),
            mailbox,
        }
    }

    fn alive_key(&self, node: &str) -> String {
        format!("{}:alive:{node}", self.prefix)
    }
}

/// Whether Redis is usable, for `/ready`.
#[derive(Default)]
pub struct BridgeHealth {
    subscribed: AtomicBool,
    heartbeat_ok: AtomicBool,
    /// The other nodes have had `redis.gather_timeout_ms` to send their
    /// presence snapshots since this node last (re)connected.
    synced: AtomicBool,
}

impl BridgeHealth {
    pub fn up(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
            && self.heartbeat_ok.load(Ordering::Relaxed)
            && self.synced.load(Ordering::Relaxed)
    }
}

struct Gathering {
    waiting_for: HashSet<Arc<str>>,
    answers: Vec<AdminAnswer>,
    done: Option<oneshot::Sender<Vec<AdminAnswer>>>,
}

/// Where what other nodes say goes: the registry, through its bounded
/// mailbox (the bridge does not know the registry's type).
pub struct Inbox {
    pub events: Peer<FromCluster>,
    pub gone: Peer<NodeGone>,
}

pub struct RedisBridge {
    cfg: BridgeConfig,
    client: redis::Client,
    pool: Pool,
    outbox: mpsc::Sender<Outgoing>,
    sink: Option<PubSubSink>,
    /// Counts pub/sub connections, so events of an old one are ignored.
    generation: u64,
    backoff: Duration,
    rooms: HashSet<Arc<str>>,
    registry: Inbox,
    /// Other nodes seen, with their boot id.
    known: HashMap<Arc<str>, Arc<str>>,
    /// When each known node's liveness key was last seen.
    last_alive: HashMap<Arc<str>, Instant>,
    pending: HashMap<u64, Gathering>,
    next_request: u64,
    /// Heartbeats started.
    beats: u64,
    health: Arc<BridgeHealth>,
    metrics: Arc<Metrics>,
}

impl RedisBridge {
    pub fn new(
        cfg: BridgeConfig,
        registry: Inbox,
        health: Arc<BridgeHealth>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|e| format!("invalid REDIS_URL: {e}"))?;
        let mut pool_cfg = deadpool_redis::Config::from_url(cfg.url.clone());
        pool_cfg.pool = Some(PoolConfig::new(cfg.pool_size));
        let pool = pool_cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| format!("cannot create the Redis pool: {e}"))?;
        let (outbox, rx) = mpsc::channel(cfg.mailbox.max(1));
        tokio::spawn(publisher(pool.clone(), rx, metrics.clone()));
        Ok(RedisBridge {
            cfg,
            client,
            pool,
            outbox,
            sink: None,
            generation: 0,
            backoff: Duration::from_millis(100),
            rooms: HashSet::new(),
            registry,
            known: HashMap::new(),
            last_alive: HashMap::new(),
            pending: HashMap::new(),
            next_request: 1,
            beats: 0,
            health,
            metrics,
        })
    }

    fn publish(&self, channel: &Channel, event: ClusterEvent) {
        let envelope = Envelope {
            node: self.cfg.node_id.clone(),
            boot: self.cfg.boot_id.clone(),
            event,
        };
        let payload = serde_json::to_string(&envelope).expect("cluster events serialise");
        if self
            .outbox
            .try_send(Outgoing::Event(channel.name(&self.cfg.prefix), payload))
            .is_err()
        {
            inc(&self.metrics.redis_publish_errors);
            log::warn!("redis publish queue full: an event to {channel:?} was dropped");
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        let mut channels = vec![
            Channel::All.name(&self.cfg.prefix),
            Channel::Node(self.cfg.node_id.clone()).name(&self.cfg.prefix),
        ];
        channels.extend(
            self.rooms
                .iter()
                .map(|r| Channel::Room(r.clone()).name(&self.cfg.prefix)),
        );
        let connecting = async move {
            let pubsub = tokio::time::timeout(COMMAND_TIMEOUT, client.get_async_pubsub())
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| e.to_string())?;
            let (mut sink, stream) = pubsub.split();
            tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(&channels))
                .await
                .map_err(|_| "subscribe timed out".to_string())?
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((sink, stream))
        };
        ctx.spawn(connecting.into_actor(self).map(|res, act, ctx| match res {
            Ok((sink, stream)) => {
                act.generation += 1;
                let generation = act.generation;
                act.sink = Some(sink);
                act.backoff = Duration::from_millis(100);
                act.health.subscribed.store(true, Ordering::Relaxed);
                log::info!("redis: subscribed as node {}", act.cfg.node_id);
                let inbound = stream
                    .map(move |msg| Inbound::Message(generation, msg))
                    .chain(futures_util::stream::once(async move {
                        Inbound::Closed(generation)
                    }));
                ctx.add_stream(inbound);
                // Ask every node for its presence, and send ours (the registry
                // answers a Hello, ours included, with its snapshot to all).
                act.health.synced.store(false, Ordering::Relaxed);
                act.publish(&Channel::All, ClusterEvent::Hello);
                let hello = FromCluster {
                    node: act.cfg.node_id.clone(),
                    event: ClusterEvent::Hello,
                };
                let wait = act.registry.events.tell(hello);
                act.wait_for(ctx, wait);
                ctx.run_later(act.cfg.gather_timeout, move |act, _| {
                    if act.generation == generation {
                        act.health.synced.store(true, Ordering::Relaxed);
                    }
                });
            }
            Err(e) => {
                log::warn!(
                    "redis: cannot subscribe ({e}); retrying in {:?}",
                    act.backoff
                );
                act.retry_later(ctx);
            }
        }));
    }

    fn retry_later(&mut self, ctx: &mut Context<Self>) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(self.cfg.reconnect_max);
        ctx.run_later(wait, |act, ctx| act.connect(ctx));
    }

    /// (Un)subscribes a room's channel; the future ends when Redis has
    /// confirmed (or at once when nothing changes or Redis is down: the
    /// channel is then subscribed on reconnection).
    fn subscribe(
        &mut self,
        room: Arc<str>,
        on: bool,
    ) -> futures_util::future::BoxFuture<'static, ()> {
        let changed = if on {
            self.rooms.insert(room.clone())
        } else {
            self.rooms.remove(&room)
        };
        let sink = self.sink.clone().filter(|_| changed);
        let channel = Channel::Room(room).name(&self.cfg.prefix);
        Box::pin(async move {
            let Some(mut sink) = sink else { return };
            let done = async {
                if on {
                    sink.subscribe(&channel).await
                } else {
                    sink.unsubscribe(&channel).await
                }
            };
            match tokio::time::timeout(COMMAND_TIMEOUT, done).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::warn!("redis: (un)subscribe {channel}: {e}"),
                Err(_) => log::warn!("redis: (un)subscribe {channel}: timed out"),
            }
        })
    }

    /// Refreshes our liveness key and checks the other nodes'.
    fn beat(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        let own = self.cfg.alive_key(&self.cfg.node_id);
        let (boot, ttl) = (
            self.cfg.boot_id.clone(),
            self.cfg.node_ttl.as_millis() as u64,
        );
        let others: Vec<Arc<str>> = self.known.keys().cloned().collect();
        let keys: Vec<String> = others.iter().map(|n| self.cfg.alive_key(n)).collect();
        let beat = async move {
            let work = async {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                // GET: whether our own key survived since the last beat.
                let previous: Option<String> = redis::cmd("SET")
                    .arg(&own)
                    .arg(&*boot)
                    .arg("PX")
                    .arg(ttl)
                    .arg("GET")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                if keys.is_empty() {
                    return Ok((previous.is_some(), Vec::<(Option<String>, i64)>::new()));
                }
                let mut pipe = redis::pipe();
                pipe.cmd("MGET").arg(&keys);
                for key in &keys {
                    pipe.cmd("PTTL").arg(key);
                }
                let (boots, pttls): (Vec<Option<String>>, Vec<i64>) = {
                    let mut values: Vec<redis::Value> = pipe
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    let rest = values.split_off(1);
                    let boots = redis::from_redis_value(&values[0]).map_err(|e| e.to_string())?;
                    let pttls = rest
                        .iter()
                        .map(redis::from_redis_value)
                        .collect::<Result<_, _>>()
                        .map_err(|e| e.to_string())?;
                    (boots, pttls)
                };
                Ok::<_, String>((previous.is_some(), boots.into_iter().zip(pttls).collect()))
            };
            tokio::time::timeout(COMMAND_TIMEOUT, work)
                .await
                .map_err(|_| "timed out".to_string())?
        };
        let first_beat = self.beats == 0;
        self.beats += 1;
        ctx.spawn(beat.into_actor(self).map(move |res, act, ctx| match res {
            Ok((own_kept, seen)) => {
                let now = Instant::now();
                if !act.health.heartbeat_ok.swap(true, Ordering::Relaxed) {
                    // Redis is back: the others get the same grace to put
                    // their keys back as after a fresh start.
                    for seen in act.last_alive.values_mut() {
                        *seen = now;
                    }
                }
                // Our own key gone too means Redis lost its keys (it
                // restarted empty), not that the others' expired.
                let keys_kept = own_kept || first_beat;
                let heartbeat = act.cfg.heartbeat;
                for (node, (value, pttl)) in others.into_iter().zip(seen) {
                    let Some(boot) = act.known.get(&node) else {
                        continue;
                    };
                    let since = act.last_alive.get(&node).copied().unwrap_or(now);
                    let key = KeySeen {
                        value: value.as_deref(),
                        pttl_ms: pttl,
                    };
                    match liveness(&key, boot, keys_kept, now.duration_since(since), heartbeat) {
                        Liveness::Alive => {
                            act.last_alive.insert(node, now);
                        }
                        Liveness::Gone => act.node_gone(ctx, node),
                        Liveness::Unknown => {}
                    }
                }
            }
            Err(e) => {
                act.health.heartbeat_ok.store(false, Ordering::Relaxed);
                log::warn!("redis: heartbeat failed: {e}");
            }
        }));
    }

    /// Holds everything else back until a message that found the
    /// registry's mailbox full is queued: what other nodes say reaches the
    /// registry whole and in order, and a busy registry slows the reading of
    /// Redis instead of filling memory. The registry never waits for the
    /// bridge, so this cannot deadlock.
    fn wait_for(
        &mut self,
        ctx: &mut Context<Self>,
        wait: Option<impl std::future::Future<Output = ()> + 'static>,
    ) {
        if let Some(wait) = wait {
            ctx.wait(wait.into_actor(self));
        }
    }

    fn node_gone(&mut self, ctx: &mut Context<Self>, node: Arc<str>) {
        self.last_alive.remove(&node);
        if self.known.remove(&node).is_none() {
            return;
        }
        log::warn!("node {node} is gone: dropping its presence");
        for g in self.pending.values_mut() {
            g.waiting_for.remove(&node);
        }
        self.finish_complete_gatherings();
        let wait = self.registry.gone.tell(NodeGone { node });
        self.wait_for(ctx, wait);
    }

    fn finish_complete_gatherings(&mut self) {
        let done: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, g)| g.waiting_for.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(mut g) = self.pending.remove(&id) {
                if let Some(tx) = g.done.take() {
                    let _ = tx.send(g.answers);
                }
            }
        }
    }

    fn on_envelope(&mut self, ctx: &mut Context<Self>, env: Envelope) {
        if env.node == self.cfg.node_id {
            return;
        }
        match self.known.get(&env.node) {
            Some(boot) if *boot == env.boot => {}
            Some(_) => {
                // The same id with a new boot: the old node is gone.
                self.node_gone(ctx, env.node.clone());
                self.known.insert(env.node.clone(), env.boot.clone());
                self.last_alive.insert(env.node.clone(), Instant::now());
            }
            None => {
                self.known.insert(env.node.clone(), env.boot.clone());
                self.last_alive.insert(env.node.clone(), Instant::now());
            }
        }
        if let ClusterEvent::Bye = env.event {
            self.node_gone(ctx, env.node);
            return;
        }
        if let ClusterEvent::Reply { id, answer } = env.event {
            if let Some(g) = self.pending.get_mut(&id) {
                g.answers.push(answer);
                g.waiting_for.remove(&env.node);
            }
            self.finish_complete_gatherings();
            return;
        }
        let wait = self.registry.events.tell(FromCluster {
            node: env.node,
            event: env.event,
        });
        self.wait_for(ctx, wait);
    }
}

crate::bounded_mailbox!(RedisBridge);

impl Actor for RedisBridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
        self.beat(ctx);
        ctx.run_interval(self.cfg.heartbeat, |act, ctx| act.beat(ctx));
    }
}

/// Another node's liveness key as one heartbeat read it.
struct KeySeen<'a> {
    value: Option<&'a str>,
    /// Milliseconds left before it expires (negative: none, or no expiry).
    pttl_ms: i64,
}

#[derive(Debug, PartialEq, Eq)]
enum Liveness {
    Alive,
    Gone,
    /// Its key is missing but Redis may have lost it: wait a little.
    Unknown,
}

/// Whether a node is alive, from its key. A node refreshes its key every
/// heartbeat with a TTL of its `node_ttl_ms`, so a key with at most one
/// heartbeat left will have expired by the next check: the node stopped
/// refreshing about a TTL ago and is gone now, so its users leave within the
/// TTL of its last refresh rather than up to a few heartbeats after it.
/// Another boot id under its name means the old node is gone. A missing
/// key means it expired, unless Redis lost every key (`keys_kept` false):
/// then live nodes put theirs back within a heartbeat, so a node is only
/// given up after three heartbeats without its key.
fn liveness(
    key: &KeySeen<'_>,
    boot: &str,
    keys_kept: bool,
    missing_for: Duration,
    heartbeat: Duration,
) -> Liveness {
    match key.value {
        Some(b) if b == boot => {
            let expiring = key.pttl_ms >= 0 && key.pttl_ms as u128 <= heartbeat.as_millis();
            if expiring {
                Liveness::Gone
            } else {
                Liveness::Alive
            }
        }
        Some(_) => Liveness::Gone,
        None if keys_kept || missing_for >= heartbeat * 3 => Liveness::Gone,
        None => Liveness::Unknown,
    }
}

enum Inbound {
    Message(u64, redis::Msg),
    Closed(u64),
}

impl StreamHandler<Inbound> for RedisBridge {
    fn handle(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        match item {
            Inbound::Message(generation, msg) if generation == self.generation => {
                let payload = msg.get_payload_bytes();
                match serde_json::from_slice::<Envelope>(payload) {
                    Ok(env) => self.on_envelope(ctx, env),
                    Err(e) => {
                        log::warn!("redis: unreadable event on {}: {e}", msg.get_channel_name())
                    }
                }
            }
            Inbound::Closed(generation) if generation == self.generation => {
                log::warn!("redis: subscription connection lost; reconnecting");
                self.sink = None;
                self.health.subscribed.store(false, Ordering::Relaxed);
                self.retry_later(ctx);
            }
            _ => {}
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {}
}

enum Outgoing {
    Event(String, String),
    /// Answered once everything queued before it was sent (or failed).
    Flush(oneshot::Sender<()>),
}

/// Sends the events in order, pipelining what is queued.
async fn publisher(pool: Pool, mut rx: mpsc::Receiver<Outgoing>, metrics: Arc<Metrics>) {
    let mut failures: u64 = 0;
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut flush = None;
        match first {
            Outgoing::Event(channel, payload) => batch.push((channel, payload)),
            Outgoing::Flush(ack) => flush = Some(ack),
        }
        while batch.len() < PUBLISH_BATCH && flush.is_none() {
            match rx.try_recv() {
                Ok(Outgoing::Event(channel, payload)) => batch.push((channel, payload)),
                Ok(Outgoing::Flush(ack)) => flush = Some(ack),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            if let Some(ack) = flush {
                let _ = ack.send(());
            }
            continue;
        }
        let mut pipe = redis::pipe();
        for (channel, payload) in &batch {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        let sent = tokio::time::timeout(COMMAND_TIMEOUT, async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
        if let Err(e) = sent {
            for _ in &batch {
                inc(&metrics.redis_publish_errors);
            }
            failures += 1;
            if failures.is_power_of_two() {
                log::warn!(
                    "redis: {} events not published ({failures} failures so far): {e}",
                    batch.len()
                );
            }
        }
        if let Some(ack) = flush {
            let _ = ack.send(());
        }
    }
}

impl Handler<Depart> for RedisBridge {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Depart, _: &mut Context<Self>) -> Self::Result {
        self.publish(&Channel::All, ClusterEvent::Bye);
        let (ack, sent) = oneshot::channel();
        let queued = self.outbox.try_send(Outgoing::Flush(ack)).is_ok();
        let pool = self.pool.clone();
        let key = self.cfg.alive_key(&self.cfg.node_id);
        Box::pin(async move {
            let work = async {
                if queued {
                    let _ = sent.await;
                }
                if let Ok(mut conn) = pool.get().await {
                    let _ = redis::cmd("DEL")
                        .arg(&key)
                        .query_async::<()>(&mut conn)
                        .await;
                }
            };
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, work).await;
        })
    }
}

impl Handler<Relay> for RedisBridge {
    type Result = ();
    fn handle(&mut self, msg: Relay, _: &mut Context<Self>) {
        self.publish(&msg.channel, msg.event);
    }
}

impl Handler<Follow> for RedisBridge {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: Follow, _: &mut Context<Self>) -> Self::Result {
        self.subscribe(msg.room, msg.on)
    }
}

impl Handler<Gather> for RedisBridge {
    type Result = ResponseFuture<(Vec<AdminAnswer>, usize)>;
    fn handle(&mut self, msg: Gather, ctx: &mut Context<Self>) -> Self::Result {
        let asked = self.known.len();
        if asked == 0 {
            return Box::pin(async { (Vec::new(), 0) });
        }
        let id = self.next_request;
        self.next_request += 1;
        let (tx, rx) = oneshot::channel();
        self.pending.insert(
            id,
            Gathering {
                waiting_for: self.known.keys().cloned().collect(),
                answers: Vec::new(),
                done: Some(tx),
            },
        );
        self.publish(&Channel::All, ClusterEvent::Request { id, op: msg.op });
        ctx.run_later(self.cfg.gather_timeout, move |act, _| {
            if let Some(mut g) = act.pending.remove(&id) {
                if let Some(tx) = g.done.take() {
                    let _ = tx.send(g.answers);
                }
            }
        });
        Box::pin(async move { (rx.await.unwrap_or_default(), asked) })
    }
}

/// The RedisBridge as the registry's [`Cluster`]: every call goes through
/// the bridge's bounded mailbox.
pub struct BridgeLink {
    pub bridge: Mailbox<RedisBridge>,
    pub metrics: Arc<Metrics>,
}

impl Cluster for BridgeLink {
    fn relay(&self, channel: Channel, event: ClusterEvent) {
        if self.bridge.try_tell(Relay { channel, event }).is_err() {
            inc(&self.metrics.redis_publish_errors);
            log::warn!("redis bridge mailbox full: an event for other nodes was dropped");
        }
    }

    fn follow(&self, room: Arc<str>, on: bool) -> BoxFuture<'static, ()> {
        // Waits for room rather than miss a room's messages.
        self.bridge
            .ask_in_turn(Follow { room, on })
            .map(|_| ())
            .boxed()
    }

    fn gather(&self, op: AdminOp) -> BoxFuture<'static, (Vec<AdminAnswer>, usize)> {
        self.bridge
            .ask_in_turn(Gather { op })
            .map(Result::unwrap_or_default)
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEAT: Duration = Duration::from_secs(2);

    fn key(value: Option<&str>, pttl_ms: i64) -> KeySeen<'_> {
        KeySeen { value, pttl_ms }
    }

    #[test]
    fn a_refreshed_key_is_alive_and_one_about_to_expire_is_gone() {
        let fresh = key(Some("b1"), 29_000);
        assert_eq!(
            liveness(&fresh, "b1", true, Duration::ZERO, BEAT),
            Liveness::Alive
        );
        let stale = key(Some("b1"), 1_500);
        assert_eq!(
            liveness(&stale, "b1", true, Duration::ZERO, BEAT),
            Liveness::Gone
        );
        let other_boot = key(Some("b2"), 29_000);
        assert_eq!(
            liveness(&other_boot, "b1", true, Duration::ZERO, BEAT),
            Liveness::Gone
        );
    }

    #[test]
    fn a_missing_key_is_gone_unless_redis_lost_every_key() {
        let missing = key(None, -2);
        assert_eq!(
            liveness(&missing, "b1", true, Duration::ZERO, BEAT),
            Liveness::Gone
        );
        assert_eq!(
            liveness(&missing, "b1", false, BEAT, BEAT),
            Liveness::Unknown,
            "Redis restarted empty: give it time to come back"
        );
        assert_eq!(
            liveness(&missing, "b1", false, BEAT * 3, BEAT),
            Liveness::Gone
        );
    }
}
