-- Token revocations (see src/revocation.rs): by user (tokens issued at or
-- before issued_before), a ban (every token of the user until ban_until),
-- or one token by its jti. Times in milliseconds since the Unix epoch, as
-- everywhere; an entry is pruned once expires_at has passed.
CREATE TABLE revocations (
    revocation_id  TEXT PRIMARY KEY,
    user_id        TEXT,
    jti            TEXT,
    issued_before  BIGINT,
    ban_until      BIGINT,
    expires_at     BIGINT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (jti IS NULL))
);
CREATE INDEX revocations_expires ON revocations (expires_at);
