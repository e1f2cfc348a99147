-- Announcements: stored, targeted by the token's `roles` claim, delivered
-- while active. `starts_at`/`ends_at` NULL: from creation / until ended;
-- `ended_at` is set by `DELETE /admin/announcements/{id}` (the row stays).
CREATE TABLE announcements (
    announcement_id  TEXT PRIMARY KEY,
    title            TEXT NOT NULL,
    message          TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('maintenance', 'feature', 'warning')),
    target_roles     TEXT NOT NULL DEFAULT '[]',
    starts_at        BIGINT,
    ends_at          BIGINT,
    created_at       BIGINT NOT NULL,
    ended_at         BIGINT
);
CREATE INDEX announcements_open ON announcements (created_at) WHERE ended_at IS NULL;

-- notification:list pages a user's notifications, read or not, newest first.
CREATE INDEX notifications_by_user ON notifications (user_id, created_at, notification_id);
