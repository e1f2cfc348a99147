//! Folding a batch of records into a few set-based writes ([`fold`]), with
//! the same end state as writing the records one by one, in order. Plain
//! data, no SQL: `sql.rs` executes a [`Plan`].
//!
//! - A connection opened in the batch is one new row; a close later in
//!   the batch is folded into it (inserted closed, never updated).
//! - A close of a connection not opened in the batch is an upsert: the row
//!   of an earlier batch is closed, a row never written (its open was lost
//!   or comes later) is inserted closed; a later open then does nothing.
//! - Room memberships joined in the batch are new rows, with `left_at`
//!   already set when the leave (or the connection's close) is in the batch
//!   too. Memberships of earlier batches are ended by one update per leave,
//!   and by one update for all the connections closed (each membership
//!   takes its connection's `disconnected_at`).
//! - Presence: one upsert per user, the last; a later close's `last_seen`
//!   is folded into it. Users with closes but no presence record take the
//!   time of their last close, in one update.
//! - Audit events: inserted in order.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Record;

/// A new `connections` row, closed already when its close is in the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnection {
    pub connection_id: String,
    pub user_id: String,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    pub connected_at: i64,
    pub last_activity: i64,
    pub disconnected_at: Option<i64>,
    pub close_code: Option<i32>,
}

/// The close of a connection not opened in this batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Close {
    pub connection_id: String,
    pub user_id: String,
    pub code: i32,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMember {
    pub room: String,
    pub user_id: String,
    pub connection_id: String,
    pub joined_at: i64,
    pub left_at: Option<i64>,
}

/// A leave of a membership written by an earlier batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Leave {
    pub room: String,
    pub connection_id: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PresenceRow {
    pub user_id: String,
    pub status: String,
    pub custom_status: Option<String>,
    pub last_seen: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub kind: &'static str,
    pub user_id: Option<String>,
    pub connection_id: Option<String>,
    pub detail: String,
    pub at: i64,
}

/// Keys that get the same value, grouped by that value (a time).
pub type ByTime = BTreeMap<i64, Vec<String>>;

/// What one batch writes, in the order `sql.rs` runs it: updates of rows
/// from earlier batches first (so they cannot touch this batch's new
/// rows), then the inserts and upserts.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Memberships of earlier batches left in this one, one by one.
    pub leaves: Vec<Leave>,
    /// Earlier batches' connections closed in this one: their open
    /// memberships end at the connection's `disconnected_at`.
    pub members_closed: Vec<String>,
    /// `last_activity` of earlier batches' connections (a join).
    pub activity: ByTime,
    pub new_connections: Vec<NewConnection>,
    pub closes: Vec<Close>,
    pub new_members: Vec<NewMember>,
    pub presence: Vec<PresenceRow>,
    /// Every connection closed in this batch.
    pub closed: Vec<String>,
    /// Users whose `last_seen` becomes the time of their last connection
    /// closed in this batch (those without a presence record in it).
    pub last_seen: Vec<String>,
    pub audit: Vec<AuditRow>,
    /// Notification ids delivered, by delivery time.
    pub delivered: ByTime,
}

/// Folds `batch` (in queue order) into a [`Plan`].
pub fn fold(batch: &[Record]) -> Plan {
    let mut f = Folder::default();
    for record in batch {
        f.add(record);
    }
    f.finish()
}

#[derive(Default)]
struct Folder {
    plan: Plan,
    /// connection id -> index in `new_connections`.
    opened: HashMap<String, usize>,
    /// connection id -> index in `closes`.
    closed: HashMap<String, usize>,
    /// connection id -> its latest join time (earlier batches' rows).
    activity: HashMap<String, i64>,
    /// (room, connection) -> index of its open row in `new_members`.
    open_members: HashMap<(String, String), usize>,
    /// Earlier batches' memberships already ended in this batch: the first
    /// end wins (later updates would find `left_at` set).
    left_before: HashSet<(String, String)>,
    closed_before: HashSet<String>,
    /// Every connection closed in this batch (`plan.closed`).
    closed_all: HashSet<String>,
    /// user -> index in `presence`.
    presence: HashMap<String, usize>,
    /// Users with a close and without a presence row.
    last_seen: HashSet<String>,
}

impl Folder {
    fn add(&mut self, record: &Record) {
        match record {
            Record::ConnectionOpened {
                connection_id,
                user_id,
                remote_addr,
                user_agent,
                at,
            } => {
                if self.opened.contains_key(connection_id) {
                    return; // the first open wins, like an insert that does nothing
                }
                // A close before its open (in this batch) stays an upsert
                // too, in case the row exists already; the new row is closed.
                let close = self
                    .closed
                    .get(connection_id)
                    .map(|&i| &self.plan.closes[i]);
                let row = NewConnection {
                    connection_id: connection_id.clone(),
                    user_id: user_id.clone(),
                    remote_addr: remote_addr.clone(),
                    user_agent: user_agent.clone(),
                    connected_at: *at,
                    last_activity: close.map_or(*at, |c| c.at),
                    disconnected_at: close.map(|c| c.at),
                    close_code: close.map(|c| c.code),
                };
                self.opened
                    .insert(connection_id.clone(), self.plan.new_connections.len());
                self.plan.new_connections.push(row);
            }
            Record::ConnectionClosed {
                connection_id,
                user_id,
                code,
                at,
            } => {
                self.close(connection_id, user_id, *code as i32, *at);
            }
            Record::Joined {
                room,
                user_id,
                connection_id,
                at,
            } => {
                let key = (room.clone(), connection_id.clone());
                self.open_members.insert(key, self.plan.new_members.len());
                self.plan.new_members.push(NewMember {
                    room: room.clone(),
                    user_id: user_id.clone(),
                    connection_id: connection_id.clone(),
                    joined_at: *at,
                    left_at: None,
                });
                match self.opened.get(connection_id) {
                    Some(&i) => {
                        let row = &mut self.plan.new_connections[i];
                        row.last_activity = row.last_activity.max(*at);
                    }
                    None => {
                        let t = self.activity.entry(connection_id.clone()).or_insert(*at);
                        *t = (*t).max(*at);
                    }
                }
            }
            Record::Left {
                room,
                connection_id,
                at,
            } => {
                let key = (room.clone(), connection_id.clone());
                if let Some(i) = self.open_members.remove(&key) {
                    self.plan.new_members[i].left_at = Some(*at);
                }
                // Rows of earlier batches, unless this batch ended them or
                // opened the connection (then there are none).
                if !self.opened.contains_key(connection_id)
                    && !self.closed_before.contains(connection_id)
                    && self.left_before.insert(key)
                {
                    self.plan.leaves.push(Leave {
                        room: room.clone(),
                        connection_id: connection_id.clone(),
                        at: *at,
                    });
                }
            }
            Record::Presence {
                user_id,
                status,
                custom_status,
                at,
            } => {
                let row = PresenceRow {
                    user_id: user_id.clone(),
                    status: status.clone(),
                    custom_status: custom_status.clone(),
                    last_seen: *at,
                };
                self.last_seen.remove(user_id);
                match self.presence.get(user_id) {
                    Some(&i) => self.plan.presence[i] = row,
                    None => {
                        self.presence
                            .insert(user_id.clone(), self.plan.presence.len());
                        self.plan.presence.push(row);
                    }
                }
            }
            Record::Audit {
                kind,
                user_id,
                connection_id,
                detail,
                at,
            } => self.plan.audit.push(AuditRow {
                kind,
                user_id: user_id.clone(),
                connection_id: connection_id.clone(),
                detail: detail.to_string(),
                at: *at,
            }),
            Record::NotificationsDelivered { ids, at } => self
                .plan
                .delivered
                .entry(*at)
                .or_default()
                .extend(ids.iter().cloned()),
        }
    }

    fn close(&mut self, connection_id: &str, user_id: &str, code: i32, at: i64) {
        match self.opened.get(connection_id) {
            Some(&i) => {
                let row = &mut self.plan.new_connections[i];
                row.disconnected_at = Some(at);
                row.close_code = Some(code);
                row.last_activity = at;
            }
            None => {
                let close = Close {
                    connection_id: connection_id.to_string(),
                    user_id: user_id.to_string(),
                    code,
                    at,
                };
                // One upsert per row: PostgreSQL refuses to touch a row
                // twice in one statement. The last close wins.
                match self.closed.get(connection_id) {
                    Some(&i) => self.plan.closes[i] = close,
                    None => {
                        self.closed
                            .insert(connection_id.to_string(), self.plan.closes.len());
                        self.plan.closes.push(close);
                    }
                }
                self.activity.remove(connection_id);
                if self.closed_before.insert(connection_id.to_string()) {
                    self.plan.members_closed.push(connection_id.to_string());
                }
            }
        }
        // Memberships joined in this batch and still open end now.
        self.open_members.retain(|(_, conn), i| {
            if conn == connection_id {
                self.plan.new_members[*i].left_at = Some(at);
                false
            } else {
                true
            }
        });
        match self.presence.get(user_id) {
            Some(&i) => self.plan.presence[i].last_seen = at,
            None => {
                self.last_seen.insert(user_id.to_string());
            }
        }
        if self.closed_all.insert(connection_id.to_string()) {
            self.plan.closed.push(connection_id.to_string());
        }
    }

    fn finish(mut self) -> Plan {
        for (conn, at) in self.activity {
            self.plan.activity.entry(at).or_default().push(conn);
        }
        for ids in self.plan.activity.values_mut() {
            ids.sort();
        }
        self.plan.last_seen = self.last_seen.into_iter().collect();
        self.plan.last_seen.sort();
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn open(conn: &str, user: &str, at: i64) -> Record {
        Record::ConnectionOpened {
            connection_id: conn.into(),
            user_id: user.into(),
            remote_addr: Some("10.0.0.1".into()),
            user_agent: None,
            at,
        }
    }

    fn close(conn: &str, user: &str, at: i64) -> Record {
        Record::ConnectionClosed {
            connection_id: conn.into(),
            user_id: user.into(),
            code: 1001,
            at,
        }
    }

    fn join(room: &str, conn: &str, at: i64) -> Record {
        Record::Joined {
            room: room.into(),
            user_id: "u".into(),
            connection_id: conn.into(),
            at,
        }
    }

    fn leave(room: &str, conn: &str, at: i64) -> Record {
        Record::Left {
            room: room.into(),
            connection_id: conn.into(),
            at,
        }
    }

    fn presence(user: &str, status: &str, at: i64) -> Record {
        Record::Presence {
            user_id: user.into(),
            status: status.into(),
            custom_status: None,
            at,
        }
    }

    #[test]
    fn a_connection_opened_and_closed_in_one_batch_is_inserted_closed() {
        let plan = fold(&[open("c1", "u", 1), join("r", "c1", 2), close("c1", "u", 3)]);
        assert_eq!(
            plan.new_connections,
            vec![NewConnection {
                connection_id: "c1".into(),
                user_id: "u".into(),
                remote_addr: Some("10.0.0.1".into()),
                user_agent: None,
                connected_at: 1,
                last_activity: 3,
                disconnected_at: Some(3),
                close_code: Some(1001),
            }]
        );
        assert!(plan.closes.is_empty(), "never updated: {:?}", plan.closes);
        assert!(plan.members_closed.is_empty() && plan.activity.is_empty());
        assert_eq!(plan.new_members[0].left_at, Some(3));
        assert_eq!(plan.closed, vec!["c1".to_string()]);
    }

    #[test]
    fn a_close_of_an_earlier_connection_is_an_upsert_that_ends_its_memberships() {
        let plan = fold(&[close("c1", "u", 5), close("c2", "v", 6)]);
        let ids: Vec<_> = plan
            .closes
            .iter()
            .map(|c| (&*c.connection_id, c.at))
            .collect();
        assert_eq!(ids, vec![("c1", 5), ("c2", 6)]);
        assert_eq!(plan.members_closed, vec!["c1", "c2"]);
        assert_eq!(plan.last_seen, vec!["u", "v"]);
        assert!(plan.new_connections.is_empty());
    }

    #[test]
    fn a_close_before_its_open_still_leaves_the_row_closed() {
        let plan = fold(&[close("c1", "u", 5), open("c1", "u", 4)]);
        assert_eq!(plan.closes.len(), 1);
        let row = &plan.new_connections[0];
        assert_eq!((row.connected_at, row.disconnected_at), (4, Some(5)));
        // a second open does nothing, like the insert it would be
        let plan = fold(&[open("c1", "u", 1), open("c1", "x", 2)]);
        assert_eq!(plan.new_connections.len(), 1);
        assert_eq!(plan.new_connections[0].user_id, "u");
    }

    #[test]
    fn presence_keeps_the_last_record_per_user_and_later_closes_fold_into_it() {
        let plan = fold(&[
            presence("u", "online", 1),
            presence("v", "online", 2),
            presence("u", "away", 3),
            close("c1", "u", 4),
            close("c2", "v", 5),
            presence("v", "busy", 6),
            close("c3", "w", 7),
        ]);
        let rows: Vec<_> = plan
            .presence
            .iter()
            .map(|p| (&*p.user_id, &*p.status, p.last_seen))
            .collect();
        assert_eq!(rows, vec![("u", "away", 4), ("v", "busy", 6)]);
        // only w has no presence record to carry its close
        assert_eq!(plan.last_seen, vec!["w"]);
    }

    #[test]
    fn memberships_left_in_the_batch_are_inserted_left() {
        let plan = fold(&[
            join("a", "c1", 1),
            leave("a", "c1", 2),
            join("a", "c1", 3),
            join("b", "c1", 4),
            leave("old", "c1", 5),
            leave("old", "c1", 6),
        ]);
        let rows: Vec<_> = plan
            .new_members
            .iter()
            .map(|m| (&*m.room, m.joined_at, m.left_at))
            .collect();
        assert_eq!(
            rows,
            vec![("a", 1, Some(2)), ("a", 3, None), ("b", 4, None)]
        );
        // the earlier batches' rows: "a" may have one too; "old" once
        let leaves: Vec<_> = plan.leaves.iter().map(|l| (&*l.room, l.at)).collect();
        assert_eq!(leaves, vec![("a", 2), ("old", 5)]);
        // c1 is an earlier connection: its activity is the last join
        assert_eq!(plan.activity, ByTime::from([(4, vec!["c1".to_string()])]));
    }

    #[test]
    fn a_leave_after_its_connections_close_touches_nothing_more() {
        let plan = fold(&[join("a", "c1", 1), close("c1", "u", 2), leave("b", "c1", 3)]);
        assert_eq!(plan.new_members[0].left_at, Some(2));
        assert!(plan.leaves.is_empty(), "{:?}", plan.leaves);
        assert!(plan.activity.is_empty(), "the close sets last_activity");
    }

    #[test]
    fn audit_events_keep_their_order_and_deliveries_group_by_time() {
        let audit = |kind, at| Record::Audit {
            kind,
            user_id: None,
            connection_id: None,
            detail: json!({ "n": at }),
            at,
        };
        let delivered = |ids: &[&str], at| Record::NotificationsDelivered {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            at,
        };
        let plan = fold(&[
            audit("connect", 1),
            delivered(&["n1"], 7),
            audit("disconnect", 2),
            delivered(&["n2", "n3"], 7),
            audit("connect", 3),
        ]);
        let kinds: Vec<_> = plan.audit.iter().map(|a| (a.kind, a.at)).collect();
        assert_eq!(
            kinds,
            vec![("connect", 1), ("disconnect", 2), ("connect", 3)]
        );
        assert_eq!(plan.audit[0].detail, r#"{"n":1}"#);
        assert_eq!(
            plan.delivered,
            ByTime::from([(7, vec!["n1".into(), "n2".into(), "n3".into()])])
        );
    }
}
