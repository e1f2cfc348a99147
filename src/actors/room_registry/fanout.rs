//! Delivery: each event is serialised once and the same shared bytes go to
//! every receiver with `try_send`, never a wait. A session whose mailbox is
//! full is a slow consumer: skipped from then on and closed with 4009 (see
//! `docs/architecture.md`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use serde_json::json;

use super::RoomRegistry;
use crate::actors::conn::{ConnHandle, ConnId};
use crate::actors::messages::{ExpireTyping, LeaveOutcome, ToSession, TypingChange};
use crate::broker::UserPresence;
use crate::metrics::{add, inc};
use crate::protocol::{encode, Event};

/// Where a member's events go.
#[derive(Clone)]
pub struct Target {
    pub session: Recipient<ToSession>,
    pub handle: Arc<ConnHandle>,
}

/// What became of one delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Taken,
    /// Its mailbox is full: a slow consumer, marked now (first time only).
    Slow {
        first: bool,
    },
    /// Marked slow before, or its session has ended.
    Skipped,
}

impl Target {
    /// Hands `frame` to the session without waiting.
    pub fn offer(&self, frame: &ByteString) -> Offer {
        if self.handle.is_slow() {
            return Offer::Skipped;
        }
        match self.session.try_send(ToSession::Deliver(frame.clone())) {
            Ok(()) => {
                self.handle.enqueued();
                Offer::Taken
            }
            Err(SendError::Full(_)) => Offer::Slow {
                first: self.handle.mark_slow(),
            },
            Err(SendError::Closed(_)) => Offer::Skipped,
        }
    }

    /// Tells the session to close; a session too far behind to take it has
    /// its socket shut down instead. False if the session has ended.
    pub fn shut_down(&self, code: u16, reason: &str) -> bool {
        let msg = ToSession::Shutdown {
            code,
            reason: reason.to_string(),
        };
        match self.session.try_send(msg) {
            Ok(()) => self.handle.enqueued(),
            Err(SendError::Full(_)) => self.handle.shut_down_socket(),
            Err(SendError::Closed(_)) => return false,
        }
        true
    }
}

impl RoomRegistry {
    /// Hands `frame` to one session; false when it could not take it.
    pub(super) fn deliver(&self, id: ConnId, target: &Target, frame: &ByteString) -> bool {
        match target.offer(frame) {
            Offer::Taken => true,
            Offer::Slow { first: true } => {
                self.slow_consumer(id, target);
                false
            }
            Offer::Slow { first: false } | Offer::Skipped => false,
        }
    }

    fn slow_consumer(&self, id: ConnId, target: &Target) {
        inc(&self.metrics.slow_consumer_closes);
        let user = self.conns.get(id).ok().map(|c| c.user().clone());
        self.records.audit(
            "slow_consumer",
            user.as_deref(),
            Some(&id.to_string()),
            json!({}),
        );
        log::warn!(
            "slow consumer conn={} user={}: mailbox full, closing with 4009",
            id,
            user.as_deref().unwrap_or("?")
        );
        // The session closes itself with 4009 the next time it runs. If its
        // socket is jammed it never runs again: shut the socket down then.
        let handle = target.handle.clone();
        let grace = self.cfg.slow_consumer_grace;
        actix::spawn(async move {
            actix::clock::sleep(grace).await;
            handle.shut_down_socket();
        });
    }

    /// Sends `frame` to every member of `room` but `except`; returns how
    /// many sessions took it.
    pub(super) fn fan_out(&self, room: &str, except: Option<ConnId>, frame: &ByteString) -> usize {
        let Some(r) = self.rooms.get(room) else {
            return 0;
        };
        let mut delivered = 0;
        for (id, target) in &r.members {
            if Some(*id) != except && self.deliver(*id, target, frame) {
                delivered += 1;
            }
        }
        add(&self.metrics.messages_out, delivered as u64);
        delivered
    }

    pub(super) fn announce_joined(&self, room: &str, user: &str, except: Option<ConnId>) {
        if self.rooms.announces_membership(room, 0) {
            let frame = encode(&Event::UserJoined {
                room,
                user_id: user,
            });
            self.fan_out(room, except, &frame);
        }
    }

    pub(super) fn announce_leave(&self, outcome: &LeaveOutcome, user: &str) {
        if outcome.last && self.rooms.announces_membership(&outcome.room, 1) {
            let frame = encode(&Event::UserLeft {
                room: &outcome.room,
                user_id: user,
            });
            self.fan_out(&outcome.room, None, &frame);
        }
        for change in &outcome.typing {
            self.announce_typing(change, None);
        }
    }

    pub(super) fn announce_typing(&self, change: &TypingChange, except: Option<ConnId>) {
        let frame = encode(&Event::Typing {
            room: &change.room,
            thread_id: change.thread_id.as_deref(),
            users: &change.users,
        });
        self.fan_out(&change.room, except, &frame);
    }

    /// `presence:changed` to every local connection in any of `rooms` (the
    /// rooms `user` is in), once each, except `origin`.
    pub(super) fn announce_presence(
        &self,
        user: &str,
        presence: &UserPresence,
        rooms: &[Arc<str>],
        origin: Option<ConnId>,
    ) {
        let frame = encode(&Event::PresenceChanged {
            user_id: user,
            status: presence.status,
            custom_status: presence.custom_status.as_ref(),
        });
        let mut receivers: HashMap<ConnId, &Target> = HashMap::new();
        for room in rooms {
            if let Some(r) = self.rooms.get(room) {
                receivers.extend(r.members.iter().map(|(id, t)| (*id, t)));
            }
        }
        if let Some(origin) = origin {
            receivers.remove(&origin);
        }
        let delivered = receivers
            .iter()
            .filter(|(id, target)| self.deliver(**id, target, &frame))
            .count();
        add(&self.metrics.messages_out, delivered as u64);
    }

    /// Checks a typing list a little after its deadline, so the entry has
    /// expired when checked; every typing:start moves the deadline, so each
    /// one gets its own check.
    pub(super) fn schedule_typing_expiry(
        &self,
        ctx: &mut Context<Self>,
        room: Arc<str>,
        thread_id: Option<String>,
    ) {
        let after = self.cfg.typing_timeout + Duration::from_millis(20);
        ctx.run_later(after, move |act, ctx| {
            let expire = act.presence.ask_in_turn(ExpireTyping { room, thread_id });
            ctx.spawn(expire.into_actor(act).map(|res, act, _| {
                if let Ok(Some(change)) = res {
                    act.announce_typing(&change, None);
                }
            }));
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// A session stand-in that never reads its mailbox of one.
    pub struct Stuck;
    impl Actor for Stuck {
        type Context = Context<Self>;
    }
    impl Handler<ToSession> for Stuck {
        type Result = ();
        fn handle(&mut self, _: ToSession, _: &mut Context<Self>) {}
    }

    /// A target whose mailbox takes one message while its actor is not
    /// polled (tests run it on the current thread, which they keep busy).
    pub fn target() -> Target {
        Target {
            session: Stuck::create(|ctx| {
                ctx.set_mailbox_capacity(1);
                Stuck
            })
            .recipient(),
            handle: ConnHandle::new(None, Arc::new(Metrics::default())),
        }
    }

    #[actix_rt::test]
    async fn a_full_mailbox_marks_a_slow_consumer_once_and_is_skipped_after() {
        let t = target();
        let frame = ByteString::from_static("{}");
        // actix lets one message past the capacity per sender.
        let mut offers = Vec::new();
        for _ in 0..4 {
            offers.push(t.offer(&frame));
        }
        assert_eq!(offers[0], Offer::Taken);
        let slow = offers
            .iter()
            .position(|o| *o == Offer::Slow { first: true });
        let slow = slow.expect("the mailbox fills");
        assert!(offers[slow + 1..].iter().all(|o| *o == Offer::Skipped));
        assert!(t.handle.is_slow());
    }
}
