-- Delivery of the outbox. A notification carries what its email is about (the site, the date),
-- so that the email says what was true when it was queued. A worker claims due rows by writing
-- its name and the end of its lease (claimed_until): a process that dies mid-send leaves its
-- rows to the others once the lease runs out.
ALTER TABLE notifications ADD COLUMN site_code TEXT REFERENCES sites (code);
ALTER TABLE notifications ADD COLUMN scheduled_for TIMESTAMP;
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
ALTER TABLE notifications ADD COLUMN claimed_until TIMESTAMP;
-- Room in each page, so that a claim (which changes no indexed column) can update in place.
ALTER TABLE notifications SET (fillfactor = 80);
-- The age of the oldest queued email, for /metrics.
CREATE INDEX notifications_queued_created ON notifications (status, created_at);
