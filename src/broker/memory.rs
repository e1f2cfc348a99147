//! In-memory [`MessageLog`] and [`PresenceStore`] for a single node.
//! Nothing here survives a restart.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures_util::future::{ready, FutureExt};

use super::{
    Appended, MemberPage, MessageChange, MessageLog, NewMessage, NodeSnapshot, PresenceStore,
    Recovery, SnapshotUser, StoreError, StoreFuture, UserPresence,
};
use crate::protocol::{timestamp, CustomStatus, Member, MessageRecord, Status};

#[derive(Default)]
struct RoomLog {
    last_seq: u64,
    recent: VecDeque<Arc<MessageRecord>>,
    /// (user, clientMsgId) of messages still in `recent`.
    dedupe: HashMap<(Arc<str>, String), Arc<MessageRecord>>,
    /// seq -> the room's `last_seq` when that message last changed.
    changed_at: HashMap<u64, u64>,
    /// user -> read position.
    read: HashMap<Arc<str>, u64>,
}

/// Keeps the last `capacity` messages of every room. The `seq` counter of
/// a room lives as long as the process, even after its messages roll off.
pub struct MemoryLog {
    capacity: usize,
    rooms: Mutex<HashMap<Arc<str>, RoomLog>>,
}

impl MemoryLog {
    pub fn new(capacity: usize) -> Self {
        MemoryLog {
            capacity: capacity.max(1),
            rooms: Mutex::new(HashMap::new()),
        }
    }

    fn append_now(&self, msg: NewMessage) -> Result<Appended, StoreError> {
        let mut rooms = self.rooms.lock().expect("log lock");
        let log = rooms.entry(msg.room.clone()).or_default();
        if let Some(key) = &msg.client_msg_id {
            if let Some(prev) = log.dedupe.get(&(msg.user_id.clone(), key.clone())) {
                return Ok(Appended {
                    record: prev.clone(),
                    duplicate: true,
                });
            }
        }
        if let Some(parent) = &msg.reply_to {
            if !log.recent.iter().any(|m| &m.message_id == parent) {
                return Err(StoreError::Missing(format!(
                    "replyTo: no message {parent} in room {}",
                    msg.room
                )));
            }
        }
        log.last_seq += 1;
        let record = Arc::new(MessageRecord {
            room: msg.room,
            message_id: uuid::Uuid::now_v7().to_string(),
            seq: log.last_seq,
            user_id: msg.user_id,
            content: msg.content,
            thread_id: msg.thread_id,
            reply_to: msg.reply_to,
            kind: msg.kind,
            metadata: msg.metadata,
            timestamp: timestamp(Utc::now()),
            edited_at: None,
            deleted: false,
            client_msg_id: msg.client_msg_id,
        });
        if let Some(key) = &record.client_msg_id {
            log.dedupe
                .insert((record.user_id.clone(), key.clone()), record.clone());
        }
        log.recent.push_back(record.clone());
        if log.recent.len() > self.capacity {
            if let Some(old) = log.recent.pop_front() {
                if let Some(key) = &old.client_msg_id {
                    log.dedupe.remove(&(old.user_id.clone(), key.clone()));
                }
                log.changed_at.remove(&old.seq);
            }
        }
        Ok(Appended {
            record,
            duplicate: false,
        })
    }

    fn change_now(
        &self,
        room: &str,
        message_id: &str,
        change: MessageChange,
    ) -> Result<Arc<MessageRecord>, StoreError> {
        let mut rooms = self.rooms.lock().expect("log lock");
        let log = rooms.get_mut(room);
        let slot = log.and_then(|log| {
            let stamp = log.last_seq;
            let i = log
                .recent
                .iter()
                .position(|m| m.message_id == message_id && !m.deleted)?;
            Some((log, i, stamp))
        });
        let Some((log, i, stamp)) = slot else {
            return Err(StoreError::Missing(format!(
                "no message {message_id} in room {room}"
            )));
        };
        let mut record = (*log.recent[i]).clone();
        change.apply(&mut record, &timestamp(Utc::now()));
        let record = Arc::new(record);
        log.changed_at.insert(record.seq, stamp);
        log.recent[i] = record.clone();
        Ok(record)
    }

    fn recover_now(&self, room: &str, since: Option<u64>, max: usize) -> Recovery {
        let rooms = self.rooms.lock().expect("log lock");
        let Some(log) = rooms.get(room) else {
            return Recovery {
                latest: 0,
                messages: Vec::new(),
                complete: true,
                changed: Vec::new(),
            };
        };
        let Some(since) = since else {
            return Recovery {
                latest: log.last_seq,
                messages: Vec::new(),
                complete: true,
                changed: Vec::new(),
            };
        };
        let missed = log.last_seq.saturating_sub(since) as usize;
        let retained: Vec<_> = log
            .recent
            .iter()
            .filter(|m| m.seq > since)
            .cloned()
            .collect();
        let complete = retained.len() == missed && missed <= max;
        let skip = retained.len().saturating_sub(max);
        let stamp = since.min(log.last_seq);
        let changed = log
            .recent
            .iter()
            .filter(|m| m.seq <= stamp)
            .filter(|m| log.changed_at.get(&m.seq).is_some_and(|&at| at >= stamp))
            .take(max)
            .cloned()
            .collect();
        Recovery {
            changed,
            latest: log.last_seq,
            messages: retained.into_iter().skip(skip).collect(),
            complete,
        }
    }

    fn history_now(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        reply_to: Option<&str>,
    ) -> Vec<Arc<MessageRecord>> {
        let rooms = self.rooms.lock().expect("log lock");
        let Some(log) = rooms.get(room) else {
            return Vec::new();
        };
        let before = before.unwrap_or(u64::MAX);
        let older: Vec<_> = log
            .recent
            .iter()
            .filter(|m| m.seq < before)
            .filter(|m| reply_to.is_none() || m.reply_to.as_deref() == reply_to)
            .cloned()
            .collect();
        let skip = older.len().saturating_sub(limit);
        older.into_iter().skip(skip).collect()
    }
}

impl MessageLog for MemoryLog {
    fn append(&self, msg: NewMessage) -> StoreFuture<Appended> {
        ready(self.append_now(msg)).boxed()
    }

    fn recover(&self, room: &str, since: Option<u64>, max: usize) -> StoreFuture<Recovery> {
        ready(Ok(self.recover_now(room, since, max))).boxed()
    }

    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        reply_to: Option<&str>,
    ) -> StoreFuture<Vec<Arc<MessageRecord>>> {
        ready(Ok(self.history_now(room, before, limit, reply_to))).boxed()
    }

    fn find(&self, room: &str, message_id: &str) -> StoreFuture<Arc<MessageRecord>> {
        let rooms = self.rooms.lock().expect("log lock");
        let found = rooms
            .get(room)
            .and_then(|log| log.recent.iter().find(|m| m.message_id == message_id))
            .cloned()
            .ok_or_else(|| StoreError::Missing(format!("no message {message_id} in room {room}")));
        ready(found).boxed()
    }

    fn change(
        &self,
        room: &str,
        message_id: &str,
        change: MessageChange,
    ) -> StoreFuture<Arc<MessageRecord>> {
        ready(self.change_now(room, message_id, change)).boxed()
    }

    fn mark_read(&self, room: &str, user: &str, seq: u64) -> StoreFuture<u64> {
        let mut rooms = self.rooms.lock().expect("log lock");
        let log = rooms.entry(room.into()).or_default();
        let target = seq.min(log.last_seq);
        let at = log.read.entry(user.into()).or_insert(0);
        *at = (*at).max(target);
        ready(Ok(*at)).boxed()
    }
}

#[derive(Debug, Clone)]
struct UserEntry {
    name: Option<Arc<str>>,
    status: Status,
    custom_status: Option<CustomStatus>,
    /// node -> connections of the user there
    nodes: HashMap<Arc<str>, usize>,
}

/// node -> connections
type PerNode = HashMap<Arc<str>, usize>;

/// Presence of the users on every node this node knows of.
#[derive(Default)]
pub struct MemoryPresence {
    users: HashMap<Arc<str>, UserEntry>,
    /// room -> user (ordered, so a page costs its own size) -> node -> that
    /// user's connections in the room there
    rooms: HashMap<Arc<str>, BTreeMap<Arc<str>, PerNode>>,
}

impl MemoryPresence {
    /// `user`'s member entry, from their connections in one room.
    fn entry(&self, user: &Arc<str>, nodes: &PerNode) -> Member {
        let p = self.users.get(user);
        Member {
            user_id: user.clone(),
            name: p.and_then(|p| p.name.clone()),
            status: p.map_or(Status::Online, |p| p.status),
            custom_status: p.and_then(|p| p.custom_status.clone()),
            connections: nodes.values().sum(),
        }
    }

    fn room_count(&self, room: &str, user: &str) -> usize {
        self.rooms
            .get(room)
            .and_then(|m| m.get(user))
            .map_or(0, |nodes| nodes.values().sum())
    }
}

impl PresenceStore for MemoryPresence {
    fn connect(&mut self, node: &Arc<str>, user: &Arc<str>, name: Option<Arc<str>>) {
        let entry = self.users.entry(user.clone()).or_insert(UserEntry {
            name: None,
            status: Status::Online,
            custom_status: None,
            nodes: HashMap::new(),
        });
        *entry.nodes.entry(node.clone()).or_insert(0) += 1;
        if name.is_some() {
            entry.name = name;
        }
    }

    fn disconnect(&mut self, node: &str, user: &str) {
        let Some(entry) = self.users.get_mut(user) else {
            return;
        };
        if let Some(n) = entry.nodes.get_mut(node) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                entry.nodes.remove(node);
            }
        }
        if entry.nodes.is_empty() {
            self.users.remove(user);
        }
    }

    fn join(&mut self, node: &Arc<str>, room: &Arc<str>, user: &Arc<str>) -> bool {
        let first = self.room_count(room, user) == 0;
        *self
            .rooms
            .entry(room.clone())
            .or_default()
            .entry(user.clone())
            .or_default()
            .entry(node.clone())
            .or_insert(0) += 1;
        first
    }

    fn leave(&mut self, node: &str, room: &str, user: &str) -> bool {
        let Some(members) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(nodes) = members.get_mut(user) else {
            return false;
        };
        let Some(count) = nodes.get_mut(node) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            nodes.remove(node);
        }
        if !nodes.is_empty() {
            return false;
        }
        members.remove(user);
        if members.is_empty() {
            self.rooms.remove(room);
        }
        true
    }

    fn present(&self, room: &str, user: &str) -> bool {
        self.room_count(room, user) > 0
    }

    fn set_status(&mut self, user: &str, status: Status, custom: Option<CustomStatus>) -> bool {
        match self.users.get_mut(user) {
            Some(entry) => {
                entry.status = status;
                entry.custom_status = custom;
                true
            }
            None => false,
        }
    }

    fn user(&self, user: &str) -> Option<UserPresence> {
        self.users.get(user).map(|e| UserPresence {
            name: e.name.clone(),
            status: e.status,
            custom_status: e.custom_status.clone(),
            connections: e.nodes.values().sum(),
        })
    }

    fn members(&self, room: &str, after: Option<&str>, limit: usize) -> MemberPage {
        let Some(members) = self.rooms.get(room) else {
            return MemberPage::default();
        };
        let from = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut page = members.range::<str, _>((from, Bound::Unbounded));
        let list: Vec<Member> = page
            .by_ref()
            .take(limit)
            .map(|(user, nodes)| self.entry(user, nodes))
            .collect();
        let next = match page.next() {
            Some(_) => list.last().map(|m| m.user_id.clone()),
            None => None,
        };
        MemberPage {
            members: list,
            count: members.len(),
            next,
        }
    }

    fn member(&self, room: &str, user: &str) -> Option<Member> {
        let (user, nodes) = self.rooms.get(room)?.get_key_value(user)?;
        Some(self.entry(user, nodes))
    }

    fn rooms_of(&self, user: &str) -> Vec<Arc<str>> {
        self.rooms
            .iter()
            .filter(|(_, members)| members.contains_key(user))
            .map(|(room, _)| room.clone())
            .collect()
    }

    fn snapshot(&self, node: &str) -> NodeSnapshot {
        let users = self
            .users
            .iter()
            .filter_map(|(user, e)| {
                e.nodes.get(node).map(|&connections| SnapshotUser {
                    user: user.clone(),
                    name: e.name.clone(),
                    status: e.status,
                    custom_status: e.custom_status.clone(),
                    connections,
                })
            })
            .collect();
        let mut rooms = Vec::new();
        for (room, members) in &self.rooms {
            for (user, nodes) in members {
                if let Some(&n) = nodes.get(node) {
                    rooms.push((room.clone(), user.clone(), n));
                }
            }
        }
        NodeSnapshot { users, rooms }
    }

    fn drop_node(&mut self, node: &str) {
        self.users.retain(|_, e| {
            e.nodes.remove(node);
            !e.nodes.is_empty()
        });
        self.rooms.retain(|_, members| {
            members.retain(|_, nodes| {
                nodes.remove(node);
                !nodes.is_empty()
            });
            !members.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, user: &str, key: Option<&str>) -> NewMessage {
        NewMessage {
            room: room.into(),
            user_id: user.into(),
            content: "hi".into(),
            thread_id: None,
            metadata: None,
            client_msg_id: key.map(String::from),
            reply_to: None,
            kind: Default::default(),
        }
    }

    #[test]
    fn seq_is_per_room_and_consecutive() {
        let log = MemoryLog::new(10);
        assert_eq!(log.append_now(msg("a", "u", None)).unwrap().record.seq, 1);
        assert_eq!(log.append_now(msg("a", "u", None)).unwrap().record.seq, 2);
        assert_eq!(log.append_now(msg("b", "u", None)).unwrap().record.seq, 1);
    }

    #[test]
    fn client_msg_id_dedupes_per_user() {
        let log = MemoryLog::new(10);
        let first = log.append_now(msg("a", "u", Some("k"))).unwrap();
        let again = log.append_now(msg("a", "u", Some("k"))).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.record.seq, first.record.seq);
        assert_eq!(again.record.message_id, first.record.message_id);
        let other = log.append_now(msg("a", "v", Some("k"))).unwrap();
        assert!(!other.duplicate);
        assert_eq!(other.record.seq, 2);
    }

    #[test]
    fn recovery_with_and_without_overflow() {
        let log = MemoryLog::new(5);
        for _ in 0..8 {
            log.append_now(msg("a", "u", None)).unwrap();
        }
        let r = log.recover_now("a", Some(6), 10);
        assert_eq!((r.latest, r.complete), (8, true));
        assert_eq!(
            r.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![7, 8]
        );
        // 1 and 2 rolled off the 5-message window: incomplete.
        let r = log.recover_now("a", Some(1), 10);
        assert!(!r.complete);
        assert_eq!(r.messages.first().map(|m| m.seq), Some(4));
        // More missed than the cap: the newest `max`, incomplete.
        let r = log.recover_now("a", Some(4), 2);
        assert!(!r.complete);
        assert_eq!(
            r.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![7, 8]
        );
        let r = log.recover_now("a", None, 2);
        assert_eq!((r.latest, r.messages.len(), r.complete), (8, 0, true));
        assert_eq!(log.recover_now("nope", Some(3), 2).latest, 0);
    }

    #[test]
    fn history_pages_backwards() {
        let log = MemoryLog::new(100);
        for _ in 0..10 {
            log.append_now(msg("a", "u", None)).unwrap();
        }
        let page = log.history_now("a", None, 3, None);
        assert_eq!(
            page.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        let page = log.history_now("a", Some(8), 3, None);
        assert_eq!(
            page.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        assert!(log.history_now("a", Some(1), 3, None).is_empty());
    }

    #[test]
    fn members_page_in_user_order_and_a_joiner_is_always_listed() {
        let mut p = MemoryPresence::default();
        let (room, node): (Arc<str>, Arc<str>) = ("r".into(), "n".into());
        for i in (0..25).rev() {
            let user: Arc<str> = format!("u{i:02}").into();
            p.connect(&node, &user, None);
            p.join(&node, &room, &user);
        }
        let mut seen = Vec::new();
        let mut after: Option<Arc<str>> = None;
        loop {
            let page = p.members("r", after.as_deref(), 10);
            assert_eq!(page.count, 25);
            seen.extend(page.members.iter().map(|m| m.user_id.to_string()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let all: Vec<String> = (0..25).map(|i| format!("u{i:02}")).collect();
        assert_eq!(seen, all, "every member once, in order");
        assert!(p.members("r", Some("u24"), 10).next.is_none());

        let first = p.members("r", None, 3);
        let with_joiner = first.including(p.member("r", "u20"), 3);
        let ids: Vec<&str> = with_joiner.members.iter().map(|m| &*m.user_id).collect();
        assert_eq!(ids, ["u00", "u01", "u20"]);
        let listed = p.members("r", None, 3).including(p.member("r", "u01"), 3);
        assert_eq!(listed.members.len(), 3);
        assert!(p.member("r", "nobody").is_none());
    }

    #[test]
    fn presence_counts_first_and_last_across_nodes() {
        let mut p = MemoryPresence::default();
        let (room, alice): (Arc<str>, Arc<str>) = ("r".into(), "alice".into());
        let (a, b): (Arc<str>, Arc<str>) = ("node-a".into(), "node-b".into());
        p.connect(&a, &alice, Some("Alice".into()));
        p.connect(&b, &alice, None);
        assert!(p.join(&a, &room, &alice), "first anywhere");
        assert!(!p.join(&b, &room, &alice), "second node, same user");
        assert_eq!(p.members("r", None, 10).members[0].connections, 2);
        assert_eq!(
            p.members("r", None, 10).members[0].name.as_deref(),
            Some("Alice")
        );
        assert_eq!(p.rooms_of("alice"), vec![room.clone()]);
        assert!(p.set_status("alice", Status::Busy, None));
        assert_eq!(p.members("r", None, 10).members[0].status, Status::Busy);
        assert!(!p.leave("node-a", "r", "alice"));
        assert!(p.present("r", "alice"));
        assert!(p.leave("node-b", "r", "alice"), "last anywhere");
        assert!(p.members("r", None, 10).members.is_empty());
        p.disconnect("node-a", "alice");
        assert_eq!(p.user("alice").unwrap().connections, 1);
        p.disconnect("node-b", "alice");
        assert!(p.user("alice").is_none());
        assert!(!p.set_status("alice", Status::Away, None));
    }

    #[test]
    fn a_node_can_be_dropped_and_restored_from_its_snapshot() {
        let mut p = MemoryPresence::default();
        let (room, alice, bob): (Arc<str>, Arc<str>, Arc<str>) =
            ("r".into(), "alice".into(), "bob".into());
        let (a, b): (Arc<str>, Arc<str>) = ("node-a".into(), "node-b".into());
        p.connect(&a, &alice, None);
        p.join(&a, &room, &alice);
        p.connect(&b, &bob, None);
        p.join(&b, &room, &bob);
        let snap = p.snapshot("node-b");
        assert_eq!(snap.rooms, vec![(room.clone(), bob.clone(), 1)]);
        assert_eq!(snap.users.len(), 1);
        p.drop_node("node-b");
        assert!(!p.present("r", "bob"));
        assert!(p.user("bob").is_none());
        assert!(p.present("r", "alice"));
        let mut other = MemoryPresence::default();
        for u in &snap.users {
            for _ in 0..u.connections {
                other.connect(&b, &u.user, u.name.clone());
            }
        }
        for (r, u, n) in &snap.rooms {
            for _ in 0..*n {
                other.join(&b, r, u);
            }
        }
        assert_eq!(other.snapshot("node-b"), snap);
    }
}
