DROP TABLE contact_attempts;
ALTER TABLE appointments DROP COLUMN last_attempt_at;
ALTER TABLE appointments DROP COLUMN last_outcome;
ALTER TABLE appointments DROP COLUMN attempts;
ALTER TABLE appointments DROP COLUMN reached_at;
ALTER TABLE sites DROP COLUMN operating_rooms_open;
