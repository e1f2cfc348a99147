//! The connections on this node: who each one is, where its events go,
//! which rooms it joined, and the connections of each user.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::fanout::Target;
use crate::actors::conn::ConnId;
use crate::actors::messages::ConnectionInfo;
use crate::auth::Identity;
use crate::protocol::{CommandError, ErrorCode};

pub struct Conn {
    pub identity: Arc<Identity>,
    pub target: Target,
    pub personal_room: Arc<str>,
    /// Joined rooms, the personal room not included.
    pub rooms: HashSet<Arc<str>>,
    pub info: ConnectionInfo,
}

impl Conn {
    pub fn new(identity: Arc<Identity>, target: Target, info: ConnectionInfo) -> Self {
        Conn {
            personal_room: identity.personal_room().into(),
            identity,
            target,
            rooms: HashSet::new(),
            info,
        }
    }

    pub fn user(&self) -> &Arc<str> {
        &self.identity.user_id
    }

    /// In `room`, its personal room included.
    pub fn is_in(&self, room: &str) -> bool {
        self.rooms.contains(room) || *self.personal_room == *room
    }

    /// Every room it is in, the personal room last.
    pub fn all_rooms(&self) -> Vec<Arc<str>> {
        let mut rooms: Vec<Arc<str>> = self.rooms.iter().cloned().collect();
        rooms.push(self.personal_room.clone());
        rooms
    }

    /// Its admin listing: the info noted at the upgrade and its rooms.
    pub fn listing(&self) -> ConnectionInfo {
        let mut info = self.info.clone();
        info.rooms = self.rooms.iter().cloned().collect();
        info.rooms.sort();
        info
    }
}

#[derive(Default)]
pub struct Directory {
    conns: HashMap<ConnId, Conn>,
    users: HashMap<Arc<str>, HashSet<ConnId>>,
}

impl Directory {
    pub fn insert(&mut self, id: ConnId, conn: Conn) {
        self.users
            .entry(conn.user().clone())
            .or_default()
            .insert(id);
        self.conns.insert(id, conn);
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        if let Some(set) = self.users.get_mut(conn.user()) {
            set.remove(&id);
            if set.is_empty() {
                self.users.remove(conn.user());
            }
        }
        Some(conn)
    }

    pub fn get(&self, id: ConnId) -> Result<&Conn, CommandError> {
        self.conns
            .get(&id)
            .ok_or_else(|| CommandError::new(ErrorCode::Internal, "connection is not registered"))
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(&id)
    }

    /// The connection, if it is in `room` (NOT_IN_ROOM otherwise).
    pub fn member_of(&self, id: ConnId, room: &str) -> Result<&Conn, CommandError> {
        let conn = self.get(id)?;
        if conn.is_in(room) {
            Ok(conn)
        } else {
            Err(CommandError::new(
                ErrorCode::NotInRoom,
                format!("not in room `{room}`: join it first"),
            ))
        }
    }

    /// The connection, if its token allows `room` (FORBIDDEN otherwise).
    pub fn may_access(
        &self,
        id: ConnId,
        room: &str,
        public_rooms: &[String],
    ) -> Result<&Conn, CommandError> {
        let conn = self.get(id)?;
        if conn.identity.may_access(room, public_rooms) {
            Ok(conn)
        } else {
            Err(CommandError::new(
                ErrorCode::Forbidden,
                format!("room `{room}` is not allowed for this user"),
            ))
        }
    }

    /// The connections of `user` on this node.
    pub fn of_user<'a>(&'a self, user: &str) -> impl Iterator<Item = (ConnId, &'a Conn)> + 'a {
        let ids = self.users.get(user);
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.conns.get(id).map(|c| (*id, c)))
    }

    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.conns.iter().map(|(id, c)| (*id, c))
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Connections (of one user, or all), oldest first.
    pub fn listing(&self, user: Option<&str>) -> Vec<ConnectionInfo> {
        let mut list: Vec<ConnectionInfo> = self
            .conns
            .values()
            .filter(|c| user.is_none_or(|u| **c.user() == *u))
            .map(Conn::listing)
            .collect();
        list.sort_by(|a, b| a.connected_at.cmp(&b.connected_at));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::room_registry::fanout::tests::target;

    fn conn(user: &str, at: &str, rooms: &[&str]) -> Conn {
        let identity = Arc::new(Identity {
            user_id: user.into(),
            name: None,
            rooms: vec!["team:*".into()],
            roles: Vec::new(),
            admin: false,
            expires_at: None,
        });
        let info = ConnectionInfo {
            connection_id: format!("{user}-{at}"),
            node_id: "n".into(),
            user_id: user.into(),
            remote_addr: None,
            user_agent: None,
            connected_at: at.into(),
            rooms: Vec::new(),
        };
        let mut c = Conn::new(identity, target(), info);
        c.rooms = rooms.iter().map(|r| Arc::from(*r)).collect();
        c
    }

    #[actix_rt::test]
    async fn connections_are_indexed_by_user_and_forgotten_whole() {
        let mut d = Directory::default();
        let (a1, a2, b) = (ConnId::new_v4(), ConnId::new_v4(), ConnId::new_v4());
        d.insert(a1, conn("alice", "2", &["team:1"]));
        d.insert(a2, conn("alice", "1", &[]));
        d.insert(b, conn("bob", "3", &[]));
        assert_eq!((d.len(), d.users()), (3, 2));
        assert_eq!(d.of_user("alice").count(), 2);
        let listed: Vec<String> = d
            .listing(Some("alice"))
            .into_iter()
            .map(|i| i.connected_at)
            .collect();
        assert_eq!(listed, ["1", "2"], "oldest first");
        assert_eq!(d.listing(None)[1].rooms, vec![Arc::<str>::from("team:1")]);

        d.remove(a1);
        d.remove(a2);
        assert_eq!((d.len(), d.users()), (1, 1));
        assert_eq!(d.of_user("alice").count(), 0);
        assert!(d.get(a1).is_err());
    }

    #[actix_rt::test]
    async fn membership_and_access_are_checked_with_their_own_errors() {
        let mut d = Directory::default();
        let id = ConnId::new_v4();
        d.insert(id, conn("alice", "1", &["team:1"]));
        assert!(d.member_of(id, "team:1").is_ok());
        assert!(d.member_of(id, "user:alice").is_ok(), "the personal room");
        let err = d.member_of(id, "team:2").err().unwrap();
        assert_eq!(err.code, ErrorCode::NotInRoom);
        assert!(d.may_access(id, "team:2", &[]).is_ok());
        let err = d.may_access(id, "secret", &[]).err().unwrap();
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert!(d.may_access(id, "lobby", &["lobby".into()]).is_ok());
    }
}
