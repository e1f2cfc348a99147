//! The RoomRegistry actor: rooms and their member sessions on this node.
//!
//! A thin actor over plain parts, each in its own file:
//!
//! - [`directory`]: the connections, who each one is, its rooms.
//! - [`rooms`]: the rooms' members (by connection and by user) and the
//!   limits a join must pass.
//! - [`sequencer`]: one room's delivery in `seq` order, across nodes
//!   (plain state that answers actions; unit-tested on a paused clock).
//! - [`fanout`]: delivery to sessions and slow consumers; the announcements.
//! - [`managed`]: the managed rooms in use here and their loaded
//!   memberships, so `message:send` checks roles in memory.
//!
//! and its handlers, by job: [`commands`] (what sessions ask), [`publish`]
//! (the commit stream and sequencing), [`membership`] (access to managed
//! rooms, and applying their changes), [`admin`] (kick, notify, broadcast,
//! listings, gathered from every node with typed answers), [`remote`] (what
//! other nodes say). Handlers check, call a part, and apply what it returns.
//!
//! The registry reaches the tracker through its bounded [`Mailbox`], other
//! nodes through the [`Cluster`] interface, and sessions through the
//! `Recipient<ToSession>` each `Connect` brings: it imports neither the
//! session nor the bridge (see `actors::messages`).

mod admin;
mod announcements;
mod commands;
pub mod directory;
pub mod fanout;
mod lifecycle;
pub mod managed;
mod membership;
mod publish;
mod remote;
pub mod rooms;
pub mod sequencer;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

pub use self::membership::apply_changes;

use self::directory::Directory;
use self::managed::ManagedRooms;
use self::rooms::{RoomLimits, Rooms};
use super::conn::ConnId;
use super::messages::LeaveOutcome;
use super::presence::PresenceTracker;
use crate::broker::{MessageLog, StoreError};
use crate::cluster::{Channel, Cluster, ClusterEvent};
use crate::config::Settings;
use crate::limits::RoomRates;
use crate::mailbox::{Full, Mailbox};
use crate::metrics::Metrics;
use crate::protocol::{CommandError, ErrorCode, Status};
use crate::revocation::Revocations;
use crate::rooms::RoomService;
use crate::store::records::Records;

/// The registry's share of the settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// This node's id: presence entries it makes are its own.
    pub node_id: Arc<str>,
    pub public_rooms: Vec<String>,
    pub limits: RoomLimits,
    pub recovery_max: usize,
    /// Most members a `room:join` reply lists.
    pub join_members_max: usize,
    pub typing_timeout: Duration,
    pub slow_consumer_grace: Duration,
    /// How long a message from another node waits for a missing seq.
    pub gap_timeout: Duration,
    /// How long `message:send` waits for its commit (`database.timeout_ms`).
    pub commit_timeout: Duration,
    /// Per-room send rates by pattern (`rooms.rate_limits`).
    pub rate_limits: std::collections::BTreeMap<String, u32>,
}

impl RegistryConfig {
    pub fn from_settings(s: &Settings, node_id: &str) -> Self {
        RegistryConfig {
            node_id: node_id.into(),
            public_rooms: s.rooms.public.clone(),
            limits: RoomLimits {
                max_users_default: s.limits.max_users_per_room,
                max_users: s
                    .rooms
                    .max_users
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                max_rooms_per_connection: s.limits.max_rooms_per_connection,
                join_leave_max_users: s.rooms.join_leave_events_max_users,
            },
            recovery_max: s.limits.recovery_max,
            join_members_max: s.limits.join_members_max,
            typing_timeout: s.typing.timeout,
            slow_consumer_grace: s.limits.slow_consumer_grace,
            commit_timeout: s.database.timeout,
            gap_timeout: s.redis.gap_timeout,
            rate_limits: s.rooms.rate_limits.clone(),
        }
    }
}

/// What the registry works with, built once at start-up.
pub struct RegistryDeps {
    pub log: Arc<dyn MessageLog>,
    pub presence: Mailbox<PresenceTracker>,
    pub cluster: Arc<dyn Cluster>,
    pub metrics: Arc<Metrics>,
    pub records: Arc<Records>,
    /// The revoked tokens the handshake refuses: admin calls from other
    /// nodes change them here.
    pub revocations: Arc<Revocations>,
    /// Managed rooms: who may enter, looked up on a first join here.
    pub rooms: RoomService,
}

pub struct RoomRegistry {
    cfg: RegistryConfig,
    log: Arc<dyn MessageLog>,
    presence: Mailbox<PresenceTracker>,
    cluster: Arc<dyn Cluster>,
    metrics: Arc<Metrics>,
    records: Arc<Records>,
    revocations: Arc<Revocations>,
    started: std::time::Instant,
    /// Appends waiting for their commit, in order (set in `started`).
    committing: Option<mpsc::UnboundedSender<publish::Pending>>,
    /// When this node's messages waiting for delivery were accepted.
    accepted: publish::AcceptedAt,
    rooms: Rooms,
    conns: Directory,
    managed: ManagedRooms,
    service: RoomService,
    rates: RoomRates,
    /// Announcements that start later, by id: delivered by a timer then,
    /// unless ended first (`announcements.rs`).
    scheduled: std::collections::HashMap<String, SpawnHandle>,
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.committing = Some(tx);
        ctx.add_stream(Self::committed_in_order(rx));
        // Idle send-rate buckets cost nothing for long.
        ctx.run_interval(Duration::from_secs(60), |act, _| act.rates.shrink());
    }
}

crate::bounded_mailbox!(RoomRegistry);

type Reply<T> = ResponseActFuture<RoomRegistry, Result<T, CommandError>>;

fn reply<T: 'static>(r: Result<T, CommandError>) -> Reply<T> {
    Box::pin(fut::ready(r))
}

fn tracker_down(e: MailboxError) -> CommandError {
    CommandError::new(
        ErrorCode::Internal,
        format!("presence tracker unavailable: {e}"),
    )
}

/// The tracker's mailbox is full: the command changed nothing.
fn tracker_busy(full: Full) -> CommandError {
    CommandError::busy("the presence tracker", full)
}

fn store_down(e: StoreError) -> CommandError {
    e.to_command_error()
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Online => "online",
        Status::Away => "away",
        Status::Busy => "busy",
        Status::Offline => "offline",
    }
}

impl RoomRegistry {
    pub fn new(cfg: RegistryConfig, deps: RegistryDeps) -> Self {
        let rates = RoomRates::new(&cfg.rate_limits);
        RoomRegistry {
            rooms: Rooms::new(cfg.limits.clone(), cfg.gap_timeout),
            cfg,
            log: deps.log,
            presence: deps.presence,
            cluster: deps.cluster,
            metrics: deps.metrics,
            records: deps.records,
            revocations: deps.revocations,
            started: std::time::Instant::now(),
            committing: None,
            accepted: Default::default(),
            conns: Directory::default(),
            managed: ManagedRooms::default(),
            rates,
            scheduled: Default::default(),
            service: deps.rooms,
        }
    }

    /// Adds a connection to a room; a room new to this node starts its
    /// sequencer with `seq`.
    fn add_member(
        &mut self,
        id: ConnId,
        room: &Arc<str>,
        seq: impl FnOnce(Duration) -> sequencer::Sequencer,
    ) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if *conn.personal_room != **room {
            conn.rooms.insert(room.clone());
        }
        let (user, target) = (conn.user().clone(), conn.target.clone());
        self.rooms.add(room, id, &user, target, seq);
    }

    /// Removes one membership; true when it existed. The last member out
    /// stops following the room on other nodes.
    fn remove_member(&mut self, id: ConnId, room: &str) -> bool {
        let Some(conn) = self.conns.get_mut(id) else {
            return false;
        };
        conn.rooms.remove(room);
        let user = conn.user().clone();
        match self.rooms.remove(room, id, &user) {
            rooms::Removed::NotMember => false,
            rooms::Removed::Member => true,
            rooms::Removed::LastMember(name) => {
                self.managed.forget(&name);
                actix::spawn(self.cluster.follow(name, false));
                true
            }
        }
    }

    /// Hands an event to the other nodes (nothing on a single node).
    fn relay(&self, channel: Channel, event: ClusterEvent) {
        self.cluster.relay(channel, event);
    }

    fn announce_leaves(&self, outcomes: Vec<LeaveOutcome>, user: &str) {
        for outcome in outcomes {
            self.announce_leave(&outcome, user);
        }
    }
}
