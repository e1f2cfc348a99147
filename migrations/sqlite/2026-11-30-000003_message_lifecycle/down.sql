DROP TABLE read_positions;
DROP INDEX messages_changed;
DROP INDEX messages_reply;
ALTER TABLE messages DROP COLUMN changed_at_seq;
ALTER TABLE messages DROP COLUMN kind;
ALTER TABLE messages DROP COLUMN reply_to;
