DROP TABLE disclosure_counts;
DROP TABLE disclosures;
ALTER TABLE web_sessions DROP COLUMN last_seen_at;
ALTER TABLE users DROP COLUMN last_used_at;
ALTER TABLE users DROP COLUMN expires_at;
DROP TRIGGER audit_log_no_update;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
DROP INDEX audit_log_aggregate;
ALTER TABLE audit_log DROP COLUMN aggregate_key;
ALTER TABLE audit_log DROP COLUMN occurrences;
ALTER TABLE audit_log DROP COLUMN user_agent;
ALTER TABLE audit_log DROP COLUMN address;
