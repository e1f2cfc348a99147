//! The PresenceTracker actor: who is connected, their status, who is in
//! which room (by user, not by connection) and who is typing.
//!
//! It answers questions and keeps state; it never sends to other actors.
//! The RoomRegistry asks it and fans the answers out, so the message graph
//! stays one-directional (session -> registry -> tracker).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::messages::{
    ApplySnapshot, DropNode, ExpireTyping, GetMembers, JoinOutcome, LeaveOutcome, SetStatus,
    SetTyping, SnapshotChanges, TakeSnapshot, TrackConnect, TrackDisconnect, TrackJoin, TrackLeave,
    TypingChange,
};
use crate::broker::{MemberPage, PresenceStore, UserPresence};

/// A typing list: (room, thread).
type TypingKey = (Arc<str>, Option<String>);

pub struct PresenceTracker {
    store: Box<dyn PresenceStore>,
    /// (room, thread) -> user -> when their typing entry expires
    typing: HashMap<TypingKey, HashMap<Arc<str>, Instant>>,
    typing_timeout: Duration,
}

impl PresenceTracker {
    pub fn new(store: Box<dyn PresenceStore>, typing_timeout: Duration) -> Self {
        PresenceTracker {
            store,
            typing: HashMap::new(),
            typing_timeout,
        }
    }

    /// A page of members, with `including` listed even past the page.
    fn page(
        &self,
        room: &str,
        after: Option<&str>,
        limit: usize,
        including: Option<&str>,
    ) -> MemberPage {
        let page = self.store.members(room, after, limit);
        match including {
            Some(user) if limit > 0 => page.including(self.store.member(room, user), limit),
            _ => page,
        }
    }

    fn typing_users(entries: &HashMap<Arc<str>, Instant>) -> Vec<Arc<str>> {
        let mut users: Vec<Arc<str>> = entries.keys().cloned().collect();
        users.sort();
        users
    }

    /// Removes `user` from every typing list of `room`; returns the lists
    /// that changed.
    fn stop_typing_in(&mut self, room: &str, user: &str) -> Vec<TypingChange> {
        let mut changes = Vec::new();
        self.typing.retain(|(r, thread), entries| {
            if &**r == room && entries.remove(user).is_some() {
                changes.push(TypingChange {
                    room: r.clone(),
                    thread_id: thread.clone(),
                    users: Self::typing_users(entries),
                });
            }
            !entries.is_empty()
        });
        changes
    }
}

impl Actor for PresenceTracker {
    type Context = Context<Self>;
}

crate::bounded_mailbox!(PresenceTracker);

impl Handler<TrackConnect> for PresenceTracker {
    type Result = ();
    fn handle(&mut self, msg: TrackConnect, _: &mut Context<Self>) {
        self.store.connect(&msg.node, &msg.user, msg.name);
        self.store.join(&msg.node, &msg.personal_room, &msg.user);
    }
}

impl Handler<TrackDisconnect> for PresenceTracker {
    type Result = MessageResult<TrackDisconnect>;
    fn handle(&mut self, msg: TrackDisconnect, _: &mut Context<Self>) -> Self::Result {
        let outcomes = msg
            .rooms
            .into_iter()
            .map(|room| self.leave(&msg.node, room, &msg.user))
            .collect();
        self.store.disconnect(&msg.node, &msg.user);
        MessageResult(outcomes)
    }
}

impl Handler<TrackJoin> for PresenceTracker {
    type Result = MessageResult<TrackJoin>;
    fn handle(&mut self, msg: TrackJoin, _: &mut Context<Self>) -> Self::Result {
        let first = self.store.join(&msg.node, &msg.room, &msg.user);
        let members = self.page(&msg.room, None, msg.members_max, Some(&msg.user));
        MessageResult(JoinOutcome { first, members })
    }
}

impl PresenceTracker {
    fn leave(&mut self, node: &str, room: Arc<str>, user: &str) -> LeaveOutcome {
        let last = self.store.leave(node, &room, user);
        let typing = if last {
            self.stop_typing_in(&room, user)
        } else {
            Vec::new()
        };
        LeaveOutcome { room, last, typing }
    }
}

impl Handler<TrackLeave> for PresenceTracker {
    type Result = MessageResult<TrackLeave>;
    fn handle(&mut self, msg: TrackLeave, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.leave(&msg.node, msg.room, &msg.user))
    }
}

impl Handler<SetStatus> for PresenceTracker {
    type Result = Option<(UserPresence, Vec<Arc<str>>)>;
    fn handle(&mut self, msg: SetStatus, _: &mut Context<Self>) -> Self::Result {
        if !self
            .store
            .set_status(&msg.user, msg.status, msg.custom_status)
        {
            return None;
        }
        let presence = self.store.user(&msg.user)?;
        Some((presence, self.store.rooms_of(&msg.user)))
    }
}

impl Handler<GetMembers> for PresenceTracker {
    type Result = MessageResult<GetMembers>;
    fn handle(&mut self, msg: GetMembers, _: &mut Context<Self>) -> Self::Result {
        let including = msg.including.as_deref();
        MessageResult(self.page(&msg.room, msg.after.as_deref(), msg.limit, including))
    }
}

impl Handler<SetTyping> for PresenceTracker {
    type Result = Option<TypingChange>;
    fn handle(&mut self, msg: SetTyping, _: &mut Context<Self>) -> Self::Result {
        let key = (msg.room.clone(), msg.thread_id.clone());
        let changed = if msg.active {
            let entries = self.typing.entry(key.clone()).or_default();
            entries
                .insert(msg.user, Instant::now() + self.typing_timeout)
                .is_none()
        } else {
            match self.typing.get_mut(&key) {
                Some(entries) => entries.remove(&msg.user).is_some(),
                None => false,
            }
        };
        let users = self
            .typing
            .get(&key)
            .map(Self::typing_users)
            .unwrap_or_default();
        if self.typing.get(&key).is_some_and(HashMap::is_empty) {
            self.typing.remove(&key);
        }
        changed.then_some(TypingChange {
            room: msg.room,
            thread_id: msg.thread_id,
            users,
        })
    }
}

impl Handler<ExpireTyping> for PresenceTracker {
    type Result = Option<TypingChange>;
    fn handle(&mut self, msg: ExpireTyping, _: &mut Context<Self>) -> Self::Result {
        let key = (msg.room, msg.thread_id);
        let entries = self.typing.get_mut(&key)?;
        let now = Instant::now();
        let before = entries.len();
        entries.retain(|_, expires| *expires > now);
        if entries.len() == before {
            return None;
        }
        let users = Self::typing_users(entries);
        if entries.is_empty() {
            self.typing.remove(&key);
        }
        Some(TypingChange {
            room: key.0,
            thread_id: key.1,
            users,
        })
    }
}

impl Handler<DropNode> for PresenceTracker {
    type Result = MessageResult<DropNode>;
    fn handle(&mut self, msg: DropNode, _: &mut Context<Self>) -> Self::Result {
        let before = self.store.snapshot(&msg.node);
        self.store.drop_node(&msg.node);
        MessageResult(self.gone(before.rooms.iter().map(|(r, u, _)| (r.clone(), u.clone()))))
    }
}

impl PresenceTracker {
    /// Of `pairs`, those whose user is no longer in the room anywhere.
    fn gone(
        &mut self,
        pairs: impl Iterator<Item = (Arc<str>, Arc<str>)>,
    ) -> Vec<(LeaveOutcome, Arc<str>)> {
        let mut out = Vec::new();
        for (room, user) in pairs {
            if !self.store.present(&room, &user) {
                let typing = self.stop_typing_in(&room, &user);
                out.push((
                    LeaveOutcome {
                        room,
                        last: true,
                        typing,
                    },
                    user,
                ));
            }
        }
        out
    }
}

impl Handler<TakeSnapshot> for PresenceTracker {
    type Result = MessageResult<TakeSnapshot>;
    fn handle(&mut self, msg: TakeSnapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.store.snapshot(&msg.node))
    }
}

impl Handler<ApplySnapshot> for PresenceTracker {
    type Result = MessageResult<ApplySnapshot>;
    fn handle(&mut self, msg: ApplySnapshot, _: &mut Context<Self>) -> Self::Result {
        let old = self.store.snapshot(&msg.node);
        let mut pairs: Vec<(Arc<str>, Arc<str>)> = old
            .rooms
            .iter()
            .map(|(r, u, _)| (r.clone(), u.clone()))
            .collect();
        pairs.extend(
            msg.snapshot
                .rooms
                .iter()
                .map(|(r, u, _)| (r.clone(), u.clone())),
        );
        pairs.sort();
        pairs.dedup();
        let before: Vec<bool> = pairs
            .iter()
            .map(|(r, u)| self.store.present(r, u))
            .collect();
        self.store.drop_node(&msg.node);
        for u in &msg.snapshot.users {
            for _ in 0..u.connections {
                self.store.connect(&msg.node, &u.user, u.name.clone());
            }
            self.store
                .set_status(&u.user, u.status, u.custom_status.clone());
        }
        for (room, user, n) in &msg.snapshot.rooms {
            for _ in 0..*n {
                self.store.join(&msg.node, room, user);
            }
        }
        let mut changes = SnapshotChanges::default();
        let mut left_pairs = Vec::new();
        for ((room, user), was) in pairs.into_iter().zip(before) {
            match (was, self.store.present(&room, &user)) {
                (false, true) => changes.joined.push((room, user)),
                (true, false) => left_pairs.push((room, user)),
                _ => {}
            }
        }
        changes.left = self.gone(left_pairs.into_iter());
        MessageResult(changes)
    }
}
