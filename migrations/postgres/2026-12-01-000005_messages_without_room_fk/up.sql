-- messages.room no longer references rooms(name). The message writer
-- creates or advances the room's row in the same transaction as it inserts
-- the room's messages, and rooms are never deleted, so the reference could
-- not fail; it only cost PostgreSQL a row-level trigger per inserted
-- message (a lookup and a share lock on the room's row).
-- docs/benchmarks.md, "Persisted messages on PostgreSQL".
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_room_fkey;
