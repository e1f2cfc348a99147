//! Announcements (`POST /admin/announcements`): sent at once to the
//! connections here whose token's `roles` meet the targets, and asked of
//! every other node; one that starts later is held by a timer on each node
//! until `startsAt` (dropped when it is ended first).

use std::time::Duration;

use actix::prelude::*;

use super::RoomRegistry;
use crate::actors::messages::{Announce, EndAnnouncement, ScheduleAnnouncement};
use crate::cluster::AdminOp;
use crate::metrics::add;
use crate::protocol::notifications::roles_meet;
use crate::protocol::{encode, Announcement, Event};
use crate::store::now_ms;

/// Longest single wait of a timer: a later start is waited for in steps
/// (the clock is read again at each), so no timer is set years ahead.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// When to look again at an announcement that starts at `starts` (ms), at
/// `now` (ms): `None` when it has started.
fn wait_for(starts: Option<i64>, now: i64) -> Option<Duration> {
    let starts = starts?;
    (starts > now).then(|| Duration::from_millis((starts - now) as u64).min(MAX_WAIT))
}

impl Handler<Announce> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Announce, ctx: &mut Context<Self>) -> Self::Result {
        let op = AdminOp::Announce {
            announcement: msg.announcement.clone(),
            target_roles: msg.target_roles.clone(),
            starts_ms: msg.starts_ms,
            ends_ms: msg.ends_ms,
        };
        let local = self.announce(
            ctx,
            msg.announcement,
            msg.target_roles,
            msg.starts_ms,
            msg.ends_ms,
        );
        self.counted_everywhere(local, op)
    }
}

impl Handler<ScheduleAnnouncement> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: ScheduleAnnouncement, ctx: &mut Context<Self>) {
        self.announce(
            ctx,
            msg.announcement,
            msg.target_roles,
            msg.starts_ms,
            msg.ends_ms,
        );
    }
}

impl Handler<EndAnnouncement> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: EndAnnouncement, ctx: &mut Context<Self>) -> Self::Result {
        self.end_announcement(ctx, &msg.announcement_id);
        let op = AdminOp::EndAnnouncement {
            announcement_id: msg.announcement_id,
        };
        self.counted_everywhere(1, op)
    }
}

impl RoomRegistry {
    /// Sends it here now if it has started (answers to how many), else
    /// sets a timer for its start (answers 0). Nothing once it has ended.
    pub(super) fn announce(
        &mut self,
        ctx: &mut Context<Self>,
        announcement: Announcement,
        targets: Vec<String>,
        starts_ms: Option<i64>,
        ends_ms: Option<i64>,
    ) -> usize {
        let now = now_ms();
        if ends_ms.is_some_and(|e| e <= now) {
            return 0;
        }
        let Some(wait) = wait_for(starts_ms, now) else {
            return self.announce_local(&announcement, &targets);
        };
        let id = announcement.announcement_id.clone();
        let handle = ctx.run_later(wait, move |act, ctx| {
            act.scheduled.remove(&announcement.announcement_id);
            act.announce(ctx, announcement, targets, starts_ms, ends_ms);
        });
        if let Some(old) = self.scheduled.insert(id, handle) {
            ctx.cancel_future(old);
        }
        0
    }

    /// Drops the timer of an announcement that was ended before it started.
    pub(super) fn end_announcement(&mut self, ctx: &mut Context<Self>, id: &str) {
        if let Some(handle) = self.scheduled.remove(id) {
            ctx.cancel_future(handle);
        }
    }

    /// To every connection here whose token's `roles` meet `targets`.
    fn announce_local(&self, announcement: &Announcement, targets: &[String]) -> usize {
        let frame = encode(&Event::Announcement { data: announcement });
        let delivered = self
            .conns
            .iter()
            .filter(|(_, conn)| roles_meet(&conn.identity.roles, targets))
            .filter(|(id, conn)| self.deliver(*id, &conn.target, &frame))
            .count();
        add(&self.metrics.messages_out, delivered as u64);
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_the_start_in_steps_of_at_most_a_day() {
        assert_eq!(wait_for(None, 5), None);
        assert_eq!(wait_for(Some(5), 5), None);
        assert_eq!(wait_for(Some(4), 5), None);
        assert_eq!(wait_for(Some(1_005), 5), Some(Duration::from_secs(1)));
        assert_eq!(wait_for(Some(i64::MAX), 0), Some(MAX_WAIT));
    }
}
