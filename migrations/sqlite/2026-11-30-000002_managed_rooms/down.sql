DROP TABLE room_memberships;
DROP TABLE managed_rooms;
