ALTER TABLE messages ADD CONSTRAINT messages_room_fkey FOREIGN KEY (room) REFERENCES rooms (name);
