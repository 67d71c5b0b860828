-- Delivery of the outbox. A notification carries what its email is about (the site, the date),
-- so that the email says what was true when it was queued. A worker claims due rows by writing
-- its name and pushing next_attempt_at one lease ahead: a process that dies mid-send leaves its
-- rows to the others once the lease runs out.
ALTER TABLE notifications ADD COLUMN site_code TEXT REFERENCES sites (code);
ALTER TABLE notifications ADD COLUMN scheduled_for TIMESTAMP;
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
-- The age of the oldest queued email, for /metrics.
CREATE INDEX notifications_queued_created ON notifications (status, created_at);
