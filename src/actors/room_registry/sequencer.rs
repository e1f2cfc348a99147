//! One room's delivery order: committed messages go out in `seq` order,
//! whatever node they came from.
//!
//! Plain state, no actor: each call takes what happened (a message arrived,
//! the join read the room's position, a wait ran out, missing messages were
//! read) and answers [`Action`]s for the registry to carry out. Messages from
//! other nodes may arrive out of order (each node publishes its own
//! commits); one that is ahead of a missing seq waits up to
//! `redis.gap_timeout_ms`, then the missing ones are read from the database,
//! or skipped when it cannot answer (clients see the gap and recover with
//! `room:join` + `since`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::MessageRecord;

/// What the registry must do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send this message to the room's members (in the order given).
    Deliver(Arc<MessageRecord>),
    /// Call [`Sequencer::due`] at this instant.
    WakeAt(Instant),
    /// Read the newest `limit` messages before seq `before` and hand them to
    /// [`Sequencer::filled`] (an empty list if the read failed).
    ReadMissing { before: u64, limit: usize },
}

impl PartialEq for Action {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Action::Deliver(a), Action::Deliver(b)) => a.message_id == b.message_id,
            (Action::WakeAt(a), Action::WakeAt(b)) => a == b,
            (
                Action::ReadMissing { before, limit },
                Action::ReadMissing {
                    before: b,
                    limit: l,
                },
            ) => before == b && limit == l,
            _ => false,
        }
    }
}

/// Where the sequence starts on this node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Not read (a personal room): the first message delivered sets the
    /// position.
    #[default]
    FirstDelivery,
    /// Joined for the first time on this node: messages are held until the
    /// join has read the newest stored seq. Until then the position (0) says
    /// nothing, and a message that happened to arrive first (say seq 2 from
    /// this node before seq 1 from another) would otherwise set the start
    /// and make the earlier one look delivered already.
    AwaitingJoin,
    /// The position is the room's real one (0: no message yet).
    Known,
}

/// The wait for a missing seq.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Gap {
    #[default]
    None,
    Waiting(Instant),
    Reading,
}

#[derive(Debug)]
pub struct Sequencer {
    /// The newest seq delivered here: answers `room:join` while the message
    /// log cannot.
    last_seq: u64,
    start: Start,
    /// Messages that arrived ahead of a missing seq, or before the room's
    /// starting seq was read.
    early: BTreeMap<u64, Arc<MessageRecord>>,
    gap: Gap,
    gap_timeout: Duration,
}

impl Sequencer {
    /// A room whose first message delivered sets the position.
    pub fn new(gap_timeout: Duration) -> Self {
        Sequencer {
            last_seq: 0,
            start: Start::FirstDelivery,
            early: BTreeMap::new(),
            gap: Gap::None,
            gap_timeout,
        }
    }

    /// A room new to this node: holds messages until [`Self::start`].
    pub fn awaiting_join(gap_timeout: Duration) -> Self {
        Sequencer {
            start: Start::AwaitingJoin,
            ..Self::new(gap_timeout)
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// A committed message of this room, from this node or another.
    pub fn offer(&mut self, record: Arc<MessageRecord>, now: Instant) -> Vec<Action> {
        if self.start == Start::AwaitingJoin {
            self.early.insert(record.seq, record);
            return Vec::new();
        }
        let known = self.start == Start::Known;
        if known && record.seq <= self.last_seq {
            return Vec::new(); // delivered already
        }
        if known && record.seq > self.last_seq + 1 {
            self.early.insert(record.seq, record);
            return self.wait(now).into_iter().collect();
        }
        let mut actions = vec![self.deliver(record)];
        self.drain(&mut actions);
        actions
    }

    /// Ends a new room's wait for its starting seq: `latest` is the newest
    /// stored seq the join read (None: the database did not answer, and the
    /// oldest waiting message is the start). What arrived meanwhile and is
    /// newer goes out in order, after a gap wait when one is missing.
    pub fn start(&mut self, latest: Option<u64>, now: Instant) -> Vec<Action> {
        if self.start != Start::AwaitingJoin {
            return Vec::new();
        }
        let oldest = self.early.keys().next().map(|seq| seq - 1);
        let Some(start) = latest.or(oldest) else {
            // Nothing to start from: as if never read (seq starts at 1, so a
            // non-zero position means something was delivered already).
            self.start = if self.last_seq > 0 {
                Start::Known
            } else {
                Start::FirstDelivery
            };
            return Vec::new();
        };
        self.last_seq = self.last_seq.max(start);
        self.start = Start::Known;
        self.early = self.early.split_off(&(self.last_seq + 1));
        let mut actions = Vec::new();
        self.drain(&mut actions);
        actions.extend(self.wait(now));
        actions
    }

    /// A wake-up asked for by [`Action::WakeAt`]: when the wait for a
    /// missing seq has run out, the missing messages are to be read.
    pub fn due(&mut self, now: Instant) -> Option<Action> {
        let Gap::Waiting(deadline) = self.gap else {
            return None;
        };
        if now < deadline {
            return None; // an older wake-up; the current wait has its own
        }
        if self.start == Start::AwaitingJoin || self.early.is_empty() {
            // The join that starts the room delivers what waits.
            self.gap = Gap::None;
            return None;
        }
        let first = *self.early.keys().next().expect("not empty");
        let wanted = (first - self.last_seq - 1) as usize;
        self.gap = Gap::Reading;
        Some(Action::ReadMissing {
            before: first,
            limit: wanted.max(1),
        })
    }

    /// What the read for missing messages found (empty when it failed):
    /// everything waiting goes out in order, and what is still missing is
    /// skipped (the database did not have it).
    pub fn filled(&mut self, found: Vec<Arc<MessageRecord>>) -> Vec<Action> {
        for record in found {
            if record.seq > self.last_seq {
                self.early.entry(record.seq).or_insert(record);
            }
        }
        let mut actions = Vec::new();
        for (seq, record) in std::mem::take(&mut self.early) {
            if seq > self.last_seq {
                actions.push(self.deliver(record));
            }
        }
        self.gap = Gap::None;
        actions
    }

    fn deliver(&mut self, record: Arc<MessageRecord>) -> Action {
        self.last_seq = self.last_seq.max(record.seq);
        if self.start == Start::FirstDelivery {
            self.start = Start::Known;
        }
        Action::Deliver(record)
    }

    /// Delivers the waiting messages that are next in line.
    fn drain(&mut self, actions: &mut Vec<Action>) {
        while let Some(record) = self.early.remove(&(self.last_seq + 1)) {
            actions.push(self.deliver(record));
        }
        if self.early.is_empty() {
            self.gap = Gap::None;
        }
    }

    /// Starts the wait for a missing seq, unless one runs or nothing waits.
    fn wait(&mut self, now: Instant) -> Option<Action> {
        if self.early.is_empty() || self.gap != Gap::None {
            return None;
        }
        let deadline = now + self.gap_timeout;
        self.gap = Gap::Waiting(deadline);
        Some(Action::WakeAt(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const GAP: Duration = Duration::from_millis(500);

    fn msg(seq: u64) -> Arc<MessageRecord> {
        Arc::new(MessageRecord {
            message_id: format!("m{seq}"),
            room: "r".into(),
            seq,
            user_id: "u".into(),
            content: format!("#{seq}"),
            thread_id: None,
            reply_to: None,
            kind: Default::default(),
            metadata: None,
            client_msg_id: None,
            timestamp: String::new(),
            edited_at: None,
            deleted: false,
        })
    }

    /// The seqs delivered by `actions`, in order.
    fn delivered(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Deliver(r) => Some(r.seq),
                _ => None,
            })
            .collect()
    }

    fn wake_at(actions: &[Action]) -> Option<Instant> {
        actions.iter().find_map(|a| match a {
            Action::WakeAt(at) => Some(*at),
            _ => None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn in_order_messages_go_out_at_once() {
        let mut s = Sequencer::new(GAP);
        let now = Instant::now();
        assert_eq!(
            delivered(&s.offer(msg(5), now)),
            [5],
            "the first sets the start"
        );
        assert_eq!(delivered(&s.offer(msg(6), now)), [6]);
        assert!(s.offer(msg(6), now).is_empty(), "a duplicate is dropped");
        assert!(s.offer(msg(4), now).is_empty(), "an older one too");
        assert_eq!(s.last_seq(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_ahead_of_a_gap_waits_and_goes_out_when_the_gap_fills() {
        let mut s = Sequencer::new(GAP);
        s.offer(msg(1), Instant::now());
        let actions = s.offer(msg(3), Instant::now());
        assert!(delivered(&actions).is_empty());
        assert_eq!(wake_at(&actions), Some(Instant::now() + GAP));
        advance(Duration::from_millis(100)).await;
        assert!(s.offer(msg(4), Instant::now()).is_empty(), "no second wait");
        assert_eq!(delivered(&s.offer(msg(2), Instant::now())), [2, 3, 4]);
        advance(GAP).await;
        assert_eq!(s.due(Instant::now()), None, "nothing is missing any more");
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_gap_timeout_the_missing_messages_are_read_then_skipped() {
        let mut s = Sequencer::new(GAP);
        s.offer(msg(10), Instant::now());
        let at = wake_at(&s.offer(msg(14), Instant::now())).unwrap();
        advance(GAP - Duration::from_millis(1)).await;
        assert_eq!(s.due(Instant::now()), None, "not yet");
        advance(Duration::from_millis(1)).await;
        assert_eq!(Instant::now(), at);
        assert_eq!(
            s.due(Instant::now()),
            Some(Action::ReadMissing {
                before: 14,
                limit: 3
            })
        );
        assert_eq!(s.due(Instant::now()), None, "one read at a time");
        // The database had 11 and 13 (12 was lost): what exists goes out in
        // order, the hole is skipped.
        assert_eq!(delivered(&s.filled(vec![msg(11), msg(13)])), [11, 13, 14]);
        assert_eq!(delivered(&s.offer(msg(15), Instant::now())), [15]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_delivers_what_waits() {
        let mut s = Sequencer::new(GAP);
        s.offer(msg(1), Instant::now());
        s.offer(msg(4), Instant::now());
        s.offer(msg(3), Instant::now());
        advance(GAP).await;
        assert!(s.due(Instant::now()).is_some());
        assert_eq!(delivered(&s.filled(Vec::new())), [3, 4]);
        assert_eq!(s.last_seq(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_room_holds_messages_until_the_join_reads_its_position() {
        let mut s = Sequencer::awaiting_join(GAP);
        // seq 8 from this node arrives before the join's read, 7 not yet.
        assert!(s.offer(msg(8), Instant::now()).is_empty());
        let actions = s.start(Some(6), Instant::now());
        assert!(delivered(&actions).is_empty(), "7 is missing");
        assert!(wake_at(&actions).is_some());
        assert_eq!(delivered(&s.offer(msg(7), Instant::now())), [7, 8]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_join_start_drops_what_the_recovery_already_covers() {
        let mut s = Sequencer::awaiting_join(GAP);
        s.offer(msg(3), Instant::now());
        s.offer(msg(4), Instant::now());
        let actions = s.start(Some(3), Instant::now());
        assert_eq!(delivered(&actions), [4], "3 came with the join's recovery");
        assert_eq!(wake_at(&actions), None);
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_database_the_oldest_waiting_message_is_the_start() {
        let mut s = Sequencer::awaiting_join(GAP);
        s.offer(msg(5), Instant::now());
        s.offer(msg(6), Instant::now());
        assert_eq!(delivered(&s.start(None, Instant::now())), [5, 6]);

        let mut empty = Sequencer::awaiting_join(GAP);
        assert!(empty.start(None, Instant::now()).is_empty());
        assert_eq!(delivered(&empty.offer(msg(9), Instant::now())), [9]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_from_an_earlier_wait_does_not_cut_a_later_one_short() {
        let mut s = Sequencer::new(GAP);
        s.offer(msg(1), Instant::now());
        s.offer(msg(3), Instant::now());
        advance(Duration::from_millis(100)).await;
        s.offer(msg(2), Instant::now()); // first gap filled
        advance(Duration::from_millis(300)).await;
        let second = wake_at(&s.offer(msg(5), Instant::now())).unwrap();
        advance(Duration::from_millis(100)).await; // the first wake-up time
        assert_eq!(s.due(Instant::now()), None);
        advance(second - Instant::now()).await;
        assert!(matches!(
            s.due(Instant::now()),
            Some(Action::ReadMissing {
                before: 5,
                limit: 1
            })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn messages_arriving_while_the_join_reads_wait_for_the_start() {
        let mut s = Sequencer::awaiting_join(GAP);
        s.offer(msg(2), Instant::now());
        advance(GAP * 2).await;
        assert_eq!(s.due(Instant::now()), None, "no gap wait before the start");
        assert_eq!(delivered(&s.start(Some(1), Instant::now())), [2]);
    }
}
