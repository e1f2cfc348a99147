-- Message lifecycle: replies, kinds, edits and deletions.
-- `edited_at` and `deleted_at` exist since the first release; a deleted
-- message keeps its row (seq, ids, author, times) with its content emptied
-- and its metadata nulled (a tombstone).
--
-- `changed_at_seq` is the room's `last_seq` when the message was last edited
-- or deleted (NULL: never changed): recovery with `since` returns the
-- messages with `seq <= since` changed at `changed_at_seq >= since`.

ALTER TABLE messages ADD COLUMN reply_to TEXT;
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
ALTER TABLE messages ADD COLUMN changed_at_seq BIGINT;
CREATE INDEX messages_reply ON messages (room, reply_to, seq) WHERE reply_to IS NOT NULL;
CREATE INDEX messages_changed ON messages (room, changed_at_seq) WHERE changed_at_seq IS NOT NULL;

-- Read positions in ad hoc rooms (a managed room's are in
-- room_memberships.last_read_seq): the last seq the user has read; it never
-- goes back.
CREATE TABLE read_positions (
    room           TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    last_read_seq  BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);

-- Notifications (v2): priority, an action, and an expiry after which a
-- notification is neither delivered on connect nor listed.
ALTER TABLE notifications ADD COLUMN priority TEXT NOT NULL DEFAULT 'medium';
ALTER TABLE notifications ADD COLUMN action_url TEXT;
ALTER TABLE notifications ADD COLUMN action_text TEXT;
ALTER TABLE notifications ADD COLUMN expires_at BIGINT;
