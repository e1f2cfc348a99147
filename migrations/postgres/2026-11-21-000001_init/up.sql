-- Times are milliseconds since the Unix epoch (UTC) in BIGINT columns, the
-- same on PostgreSQL and SQLite; the views below show them as timestamptz.

CREATE TABLE rooms (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL DEFAULT 'channel'
                CHECK (kind IN ('channel', 'dm', 'group', 'broadcast')),
    visibility  TEXT NOT NULL DEFAULT 'public'
                CHECK (visibility IN ('public', 'private')),
    max_users   INTEGER,
    metadata    TEXT NOT NULL DEFAULT '{}',
    -- The last seq handed out in this room; messages take last_seq + 1.
    last_seq    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE messages (
    room           TEXT NOT NULL REFERENCES rooms (name),
    seq            BIGINT NOT NULL,
    message_id     TEXT NOT NULL UNIQUE,
    user_id        TEXT NOT NULL,
    content        TEXT NOT NULL,
    thread_id      TEXT,
    metadata       TEXT,
    client_msg_id  TEXT,
    created_at     BIGINT NOT NULL,
    edited_at      BIGINT,
    deleted_at     BIGINT,
    PRIMARY KEY (room, seq)
);
-- clientMsgId dedupe: one message per (room, user, key).
CREATE UNIQUE INDEX messages_dedupe ON messages (room, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
CREATE INDEX messages_thread ON messages (room, thread_id, seq) WHERE thread_id IS NOT NULL;

CREATE TABLE room_members (
    id             BIGSERIAL PRIMARY KEY,
    room           TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    connection_id  TEXT NOT NULL,
    node_id        TEXT NOT NULL,
    joined_at      BIGINT NOT NULL,
    left_at        BIGINT
);
CREATE INDEX room_members_present ON room_members (room, user_id) WHERE left_at IS NULL;
CREATE INDEX room_members_connection ON room_members (connection_id) WHERE left_at IS NULL;

CREATE TABLE presence (
    user_id        TEXT PRIMARY KEY,
    status         TEXT NOT NULL CHECK (status IN ('online', 'away', 'busy', 'offline')),
    custom_status  TEXT,
    node_id        TEXT NOT NULL,
    last_seen      BIGINT NOT NULL
);

CREATE TABLE connections (
    connection_id    TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    node_id          TEXT NOT NULL,
    remote_addr      TEXT,
    user_agent       TEXT,
    connected_at     BIGINT NOT NULL,
    disconnected_at  BIGINT,
    last_activity    BIGINT NOT NULL,
    close_code       INTEGER
);
CREATE INDEX connections_user ON connections (user_id, connected_at);
CREATE INDEX connections_open ON connections (node_id) WHERE disconnected_at IS NULL;

CREATE TABLE audit_events (
    id             BIGSERIAL PRIMARY KEY,
    kind           TEXT NOT NULL,
    user_id        TEXT,
    connection_id  TEXT,
    node_id        TEXT NOT NULL,
    detail         TEXT NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (created_at);
CREATE INDEX audit_events_user ON audit_events (user_id, created_at);

CREATE TABLE notifications (
    notification_id  TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('info', 'warning', 'error', 'success')),
    title            TEXT NOT NULL,
    body             TEXT NOT NULL,
    data             TEXT NOT NULL DEFAULT 'null',
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    read_at          BIGINT
);
CREATE INDEX notifications_unread ON notifications (user_id, created_at) WHERE read_at IS NULL;

-- Analytics views for operators (PostgreSQL only).

CREATE VIEW active_connections AS
SELECT c.connection_id,
       c.user_id,
       c.node_id,
       c.remote_addr,
       c.user_agent,
       to_timestamp(c.connected_at / 1000.0)  AS connected_at,
       to_timestamp(c.last_activity / 1000.0) AS last_activity,
       p.status,
       p.custom_status
FROM connections c
LEFT JOIN presence p ON p.user_id = c.user_id
WHERE c.disconnected_at IS NULL;

CREATE VIEW room_stats AS
SELECT r.name AS room,
       r.kind,
       r.visibility,
       r.last_seq AS messages,
       (SELECT count(DISTINCT m.user_id) FROM room_members m
         WHERE m.room = r.name AND m.left_at IS NULL) AS members,
       (SELECT count(*) FROM room_members m
         WHERE m.room = r.name AND m.left_at IS NULL) AS member_connections,
       (SELECT to_timestamp(max(created_at) / 1000.0) FROM messages
         WHERE messages.room = r.name) AS last_message_at,
       to_timestamp(r.created_at / 1000.0) AS created_at
FROM rooms r;

CREATE VIEW presence_summary AS
SELECT p.status, count(*) AS users
FROM presence p
WHERE EXISTS (SELECT 1 FROM connections c
              WHERE c.user_id = p.user_id AND c.disconnected_at IS NULL)
GROUP BY p.status;
