DROP INDEX notifications_by_user;
DROP TABLE announcements;
