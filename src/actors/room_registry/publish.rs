//! `message:send`: the append, its commit in order, and delivery in `seq`
//! order through each room's [`Sequencer`].

use std::sync::Arc;

use actix::prelude::*;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::sequencer::Action;
use super::{store_down, RoomRegistry};
use crate::actors::messages::{Publish, Published, ServerPublish};
use crate::broker::{Appended, NewMessage, StoreError, StoreFuture};
use crate::cluster::{Channel, ClusterEvent};
use crate::metrics::inc;
use crate::protocol::{encode, CommandError, ErrorCode, Event, MessageRecord};

type PublishReply = oneshot::Sender<Result<Published, CommandError>>;

/// One append, in the order `Publish` messages arrived, with when it was
/// accepted.
pub(super) type Pending = (StoreFuture<Appended>, PublishReply, Instant);

/// One append's outcome, delivered in the order of appends.
type Committed = (Result<Appended, StoreError>, PublishReply, Instant);

/// Most messages whose acceptance time waits for their delivery; more (a
/// room whose sequence waits long for a gap) are forgotten, not measured.
const MAX_WAITING_DELIVERY: usize = 10_000;

/// When each message of this node that is not yet delivered was accepted,
/// by message id: `realtime_publish_deliver_seconds` measures from there
/// to its handover to each recipient's mailbox.
#[derive(Default)]
pub(super) struct AcceptedAt(std::collections::HashMap<String, Instant>);

impl AcceptedAt {
    fn note(&mut self, message_id: &str, at: Instant) {
        if self.0.len() >= MAX_WAITING_DELIVERY {
            self.0.clear();
        }
        self.0.insert(message_id.to_string(), at);
    }

    /// The acceptance time of a message being delivered (none for one
    /// accepted on another node, or forgotten).
    pub(super) fn take(&mut self, message_id: &str) -> Option<Instant> {
        self.0.remove(message_id)
    }
}

/// The answer to a `Publish` waits for its commit as a task of its own, not
/// in the registry's context: actix polls every future spawned in a context
/// whenever the actor wakes, so thousands of messages waiting for their
/// commits there made each wake-up cost thousands of polls.
impl Handler<Publish> for RoomRegistry {
    type Result = ResponseFuture<Result<Published, CommandError>>;
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        let conn = match self.conns.member_of(msg.id, &msg.room) {
            Ok(conn) => conn,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        // Managed rooms: the role table, from memory (`managed.rs`).
        if let Err(e) = self
            .managed
            .may_send(&msg.room, conn.user(), conn.identity.admin)
        {
            return Box::pin(async move { Err(e) });
        }
        let (room, user) = (self.rooms.name(&msg.room), conn.user().clone());
        if let Err(e) = self.room_rate(&room, &user) {
            return Box::pin(async move { Err(e) });
        }
        self.append_in_order(NewMessage {
            room,
            user_id: user,
            content: msg.content,
            thread_id: msg.thread_id,
            metadata: msg.metadata,
            client_msg_id: msg.client_msg_id,
            reply_to: msg.reply_to,
            kind: msg.kind,
        })
    }
}

/// `POST /admin/rooms/{room}/messages`: the same path as `message:send`
/// (seq, storage, delivery on every node), without a sender's checks.
impl Handler<ServerPublish> for RoomRegistry {
    type Result = ResponseFuture<Result<Published, CommandError>>;
    fn handle(&mut self, msg: ServerPublish, _: &mut Context<Self>) -> Self::Result {
        self.append_in_order(NewMessage {
            room: self.rooms.name(&msg.room),
            user_id: msg.user_id.into(),
            content: msg.content,
            thread_id: None,
            metadata: msg.metadata,
            client_msg_id: None,
            reply_to: None,
            kind: msg.kind,
        })
    }
}

impl RoomRegistry {
    /// Appends `msg` now and answers once it committed; delivery follows
    /// in seq order (`StreamHandler<Committed>`).
    fn append_in_order(
        &mut self,
        msg: NewMessage,
    ) -> ResponseFuture<Result<Published, CommandError>> {
        let accepted = Instant::now();
        let mut append = self.log.append(msg);
        // An append refused at once (the write queue is full) has no seq to
        // keep in order: answer it now, not after the appends queued before
        // it have committed or timed out.
        let append = match (&mut append).now_or_never() {
            None => append,
            Some(Err(e)) => return Box::pin(async move { Err(store_down(e)) }),
            Some(Ok(done)) => futures_util::future::ready(Ok(done)).boxed(),
        };
        // Commits are handled in the order the messages were appended,
        // which is seq order: see `StreamHandler<Committed>`.
        let (reply_to, answer) = oneshot::channel();
        if let Some(committing) = &self.committing {
            let _ = committing.send((append, reply_to, accepted));
        }
        let limit = self.cfg.commit_timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(CommandError::new(
                    ErrorCode::Internal,
                    "the message was not handled",
                )),
                // Not acknowledged; it may still commit (and is then
                // delivered): a retry with the same clientMsgId is safe.
                Err(_) => Err(CommandError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the database did not commit the message within {} ms",
                        limit.as_millis()
                    ),
                )),
            }
        })
    }
}

impl RoomRegistry {
    /// The room's send rate for `user` (`RoomRates`): its own `rateLimit`
    /// when managed, else `rooms.rate_limits`.
    fn room_rate(&mut self, room: &Arc<str>, user: &Arc<str>) -> Result<(), CommandError> {
        let Some(rate) = self.rates.rate_for(room, self.managed.rate_limit(room)) else {
            return Ok(());
        };
        self.rates.check(room, user, rate).map_err(|wait| {
            inc(&self.metrics.rate_limited);
            CommandError::rate_limited((wait.as_millis() as u64).max(1))
        })
    }

    /// A stream of the appends' outcomes in append order: awaiting them one
    /// after the other keeps fan-out in seq order even when a batch of
    /// commits completes at once (actix polls its spawned futures in no
    /// particular order).
    pub(super) fn committed_in_order(
        rx: mpsc::UnboundedReceiver<Pending>,
    ) -> impl Stream<Item = Committed> {
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) })
            .then(|(append, reply, at)| async move { (append.await, reply, at) })
    }
}

impl StreamHandler<Committed> for RoomRegistry {
    fn handle(&mut self, (result, reply, accepted): Committed, ctx: &mut Context<Self>) {
        let result = result.map_err(store_down).map(|appended| {
            let record = appended.record;
            if !appended.duplicate {
                inc(&self.metrics.messages_in);
                self.relay(
                    Channel::Room(record.room.clone()),
                    ClusterEvent::Message {
                        record: record.clone(),
                    },
                );
                if self.rooms.get(&record.room).is_some() {
                    self.accepted.note(&record.message_id, accepted);
                }
                self.sequence(ctx, record.clone());
            }
            Published {
                message_id: record.message_id.clone(),
                seq: record.seq,
                timestamp: record.timestamp.clone(),
            }
        });
        let _ = reply.send(result);
    }

    /// The stream lives as long as the registry; nothing to do at its end.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

// ---------------------------------------------------------------------------
// Delivery in seq order: the sequencer decides, the registry carries out.

impl RoomRegistry {
    /// A committed message, from this node or another: to this node's
    /// members of its room, in `seq` order.
    pub(super) fn sequence(&mut self, ctx: &mut Context<Self>, record: Arc<MessageRecord>) {
        let room = record.room.clone();
        let Some(r) = self.rooms.get_mut(&room) else {
            return; // no local member
        };
        let actions = r.seq.offer(record, Instant::now());
        self.apply(ctx, &room, actions);
    }

    /// The join of a room new to this node read its newest stored seq.
    pub(super) fn start_sequence(
        &mut self,
        ctx: &mut Context<Self>,
        room: &Arc<str>,
        latest: Option<u64>,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let actions = r.seq.start(latest, Instant::now());
        self.apply(ctx, room, actions);
    }

    fn apply(&mut self, ctx: &mut Context<Self>, room: &Arc<str>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Deliver(record) => {
                    let frame = encode(&Event::MessageNew(&record));
                    let delivered = self.fan_out(room, None, &frame);
                    // Once per message, not per recipient: at 5,000
                    // members, an observation each (a lock and three
                    // updates) was a visible part of a delivery's cost.
                    if let Some(at) = self.accepted.take(&record.message_id) {
                        if delivered > 0 {
                            self.metrics.publish_deliver_seconds.observe(at.elapsed());
                        }
                    }
                }
                Action::WakeAt(at) => {
                    let room = room.clone();
                    let wait = at.saturating_duration_since(Instant::now());
                    ctx.run_later(wait, move |act, ctx| act.gap_due(ctx, room));
                }
                Action::ReadMissing { before, limit } => {
                    self.read_missing(ctx, room, before, limit)
                }
            }
        }
    }

    fn gap_due(&mut self, ctx: &mut Context<Self>, room: Arc<str>) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if let Some(action) = r.seq.due(Instant::now()) {
            self.apply(ctx, &room, vec![action]);
        }
    }

    /// Reads the messages a gap is missing; what the database does not have
    /// is skipped.
    fn read_missing(
        &mut self,
        ctx: &mut Context<Self>,
        room: &Arc<str>,
        before: u64,
        limit: usize,
    ) {
        let history = self.log.history(room, Some(before), limit, None);
        let room = room.clone();
        ctx.spawn(history.into_actor(self).map(move |res, act, ctx| {
            let found = match res {
                Ok(found) => {
                    inc(&act.metrics.cluster_gaps_filled);
                    found
                }
                Err(e) => {
                    log::warn!(
                        "room {room}: missing messages not read back ({e}); skipping the gap"
                    );
                    Vec::new()
                }
            };
            let Some(r) = act.rooms.get_mut(&room) else {
                return;
            };
            let actions = r.seq.filled(found);
            act.apply(ctx, &room, actions);
        }));
    }
}
