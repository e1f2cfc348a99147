//! In-memory [`MessageLog`] and [`PresenceStore`] for a single node.
//! Nothing here survives a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures_util::future::{ready, FutureExt};

use super::{Appended, MessageLog, NewMessage, PresenceStore, Recovery, StoreFuture, UserPresence};
use crate::protocol::{timestamp, CustomStatus, Member, MessageRecord, Status};

#[derive(Default)]
struct RoomLog {
    last_seq: u64,
    recent: VecDeque<Arc<MessageRecord>>,
    /// (user, clientMsgId) of messages still in `recent`.
    dedupe: HashMap<(Arc<str>, String), Arc<MessageRecord>>,
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

    fn append_now(&self, msg: NewMessage) -> Appended {
        let mut rooms = self.rooms.lock().expect("log lock");
        let log = rooms.entry(msg.room.clone()).or_default();
        if let Some(key) = &msg.client_msg_id {
            if let Some(prev) = log.dedupe.get(&(msg.user_id.clone(), key.clone())) {
                return Appended {
                    record: prev.clone(),
                    duplicate: true,
                };
            }
        }
        log.last_seq += 1;
        let record = Arc::new(MessageRecord {
            room: msg.room,
            message_id: uuid::Uuid::new_v4().to_string(),
            seq: log.last_seq,
            user_id: msg.user_id,
            content: msg.content,
            thread_id: msg.thread_id,
            metadata: msg.metadata,
            timestamp: timestamp(Utc::now()),
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
            }
        }
        Appended {
            record,
            duplicate: false,
        }
    }

    fn recover_now(&self, room: &str, since: Option<u64>, max: usize) -> Recovery {
        let rooms = self.rooms.lock().expect("log lock");
        let Some(log) = rooms.get(room) else {
            return Recovery {
                latest: 0,
                messages: Vec::new(),
                complete: true,
            };
        };
        let Some(since) = since else {
            return Recovery {
                latest: log.last_seq,
                messages: Vec::new(),
                complete: true,
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
        Recovery {
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
            .cloned()
            .collect();
        let skip = older.len().saturating_sub(limit);
        older.into_iter().skip(skip).collect()
    }
}

impl MessageLog for MemoryLog {
    fn append(&self, msg: NewMessage) -> StoreFuture<Appended> {
        ready(Ok(self.append_now(msg))).boxed()
    }

    fn recover(&self, room: &str, since: Option<u64>, max: usize) -> StoreFuture<Recovery> {
        ready(Ok(self.recover_now(room, since, max))).boxed()
    }

    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<Vec<Arc<MessageRecord>>> {
        ready(Ok(self.history_now(room, before, limit))).boxed()
    }
}

/// Presence of the users connected to this node.
#[derive(Default)]
pub struct MemoryPresence {
    users: HashMap<Arc<str>, UserPresence>,
    /// room -> user -> that user's connections in the room
    rooms: HashMap<Arc<str>, HashMap<Arc<str>, usize>>,
}

impl PresenceStore for MemoryPresence {
    fn connect(&mut self, user: &Arc<str>, name: Option<Arc<str>>) {
        let entry = self.users.entry(user.clone()).or_insert(UserPresence {
            name: None,
            status: Status::Online,
            custom_status: None,
            connections: 0,
        });
        entry.connections += 1;
        if name.is_some() {
            entry.name = name;
        }
    }

    fn disconnect(&mut self, user: &str) {
        if let Some(entry) = self.users.get_mut(user) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                self.users.remove(user);
            }
        }
    }

    fn join(&mut self, room: &Arc<str>, user: &Arc<str>) -> bool {
        let count = self
            .rooms
            .entry(room.clone())
            .or_default()
            .entry(user.clone())
            .or_insert(0);
        *count += 1;
        *count == 1
    }

    fn leave(&mut self, room: &str, user: &str) -> bool {
        let Some(members) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(count) = members.get_mut(user) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        members.remove(user);
        if members.is_empty() {
            self.rooms.remove(room);
        }
        true
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
        self.users.get(user).cloned()
    }

    fn members(&self, room: &str) -> Vec<Member> {
        let Some(members) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut list: Vec<Member> = members
            .iter()
            .map(|(user, &connections)| {
                let p = self.users.get(user);
                Member {
                    user_id: user.clone(),
                    name: p.and_then(|p| p.name.clone()),
                    status: p.map_or(Status::Online, |p| p.status),
                    custom_status: p.and_then(|p| p.custom_status.clone()),
                    connections,
                }
            })
            .collect();
        list.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        list
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
        }
    }

    #[test]
    fn seq_is_per_room_and_consecutive() {
        let log = MemoryLog::new(10);
        assert_eq!(log.append_now(msg("a", "u", None)).record.seq, 1);
        assert_eq!(log.append_now(msg("a", "u", None)).record.seq, 2);
        assert_eq!(log.append_now(msg("b", "u", None)).record.seq, 1);
    }

    #[test]
    fn client_msg_id_dedupes_per_user() {
        let log = MemoryLog::new(10);
        let first = log.append_now(msg("a", "u", Some("k")));
        let again = log.append_now(msg("a", "u", Some("k")));
        assert!(again.duplicate);
        assert_eq!(again.record.seq, first.record.seq);
        assert_eq!(again.record.message_id, first.record.message_id);
        let other = log.append_now(msg("a", "v", Some("k")));
        assert!(!other.duplicate);
        assert_eq!(other.record.seq, 2);
    }

    #[test]
    fn recovery_with_and_without_overflow() {
        let log = MemoryLog::new(5);
        for _ in 0..8 {
            log.append_now(msg("a", "u", None));
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
            log.append_now(msg("a", "u", None));
        }
        let page = log.history_now("a", None, 3);
        assert_eq!(
            page.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        let page = log.history_now("a", Some(8), 3);
        assert_eq!(
            page.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        assert!(log.history_now("a", Some(1), 3).is_empty());
    }

    #[test]
    fn presence_counts_first_and_last() {
        let mut p = MemoryPresence::default();
        let (room, alice): (Arc<str>, Arc<str>) = ("r".into(), "alice".into());
        p.connect(&alice, Some("Alice".into()));
        p.connect(&alice, None);
        assert!(p.join(&room, &alice));
        assert!(!p.join(&room, &alice));
        assert_eq!(p.members("r")[0].connections, 2);
        assert_eq!(p.members("r")[0].name.as_deref(), Some("Alice"));
        assert!(p.set_status("alice", Status::Busy, None));
        assert_eq!(p.members("r")[0].status, Status::Busy);
        assert!(!p.leave("r", "alice"));
        assert!(p.leave("r", "alice"));
        assert!(p.members("r").is_empty());
        p.disconnect("alice");
        assert!(p.user("alice").is_some());
        p.disconnect("alice");
        assert!(p.user("alice").is_none());
        assert!(!p.set_status("alice", Status::Away, None));
    }
}
