DROP TABLE notifications;
DROP TABLE audit_events;
DROP TABLE connections;
DROP TABLE presence;
DROP TABLE room_members;
DROP TABLE messages;
DROP TABLE rooms;
