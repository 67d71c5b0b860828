ALTER TABLE appointments DROP COLUMN proposed_at;
DROP TABLE operation_durations;
ALTER TABLE services DROP COLUMN operation_minutes;
ALTER TABLE services DROP COLUMN consultation_slots;
DROP TABLE site_capacity_days;
ALTER TABLE sites DROP COLUMN session_minutes;
