-- Managed rooms: created explicitly, stored with their settings and their
-- members (a membership outlives connections; `room_members` keeps recording
-- connection visits). `member_count` is kept by the server in the same
-- transaction as each membership change, so `max_users` holds across nodes.

CREATE TABLE managed_rooms (
    name          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('channel', 'group', 'dm', 'broadcast')),
    visibility    TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    title         TEXT,
    max_users     INTEGER,
    rate_limit    INTEGER,
    metadata      TEXT NOT NULL DEFAULT '{}',
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    member_count  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE room_memberships (
    room           TEXT NOT NULL REFERENCES managed_rooms (name) ON DELETE CASCADE,
    user_id        TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'moderator', 'member')),
    muted          BOOLEAN NOT NULL DEFAULT FALSE,
    joined_at      BIGINT NOT NULL,
    last_read_seq  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room, user_id)
);
CREATE INDEX room_memberships_user ON room_memberships (user_id);
