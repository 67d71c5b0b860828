DROP INDEX notifications_queued_created;
ALTER TABLE notifications DROP COLUMN claimed_until;
ALTER TABLE notifications DROP COLUMN claimed_by;
ALTER TABLE notifications DROP COLUMN scheduled_for;
ALTER TABLE notifications DROP COLUMN site_code;
