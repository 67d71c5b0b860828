DROP INDEX appointments_updated;
ALTER TABLE sites DROP COLUMN updated_at;
