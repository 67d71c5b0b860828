-- Hardening against a stolen backup, a leaked token and the open internet (docs/security.md).

-- Where each audited request came from (the client address, as `REPRISE_TRUSTED_PROXIES`
-- says, and the user agent), and refusals aggregated: one row per address, account, route,
-- reason and minute (`aggregate_key`), whose `occurrences` grows as more come. That count is
-- the only thing an UPDATE may change, and only upwards: the log stays append-only otherwise.
ALTER TABLE audit_log ADD COLUMN address TEXT;
ALTER TABLE audit_log ADD COLUMN user_agent TEXT;
ALTER TABLE audit_log ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN aggregate_key TEXT;
-- Partial: the ordinary entries (nearly all) cost no index entry.
CREATE UNIQUE INDEX audit_log_aggregate ON audit_log (aggregate_key) WHERE aggregate_key IS NOT NULL;

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    -- Nested: OLD and NEW do not exist for TRUNCATE, and AND does not short-circuit here.
    IF TG_OP = 'UPDATE' THEN
        IF OLD.aggregate_key IS NOT NULL
           AND NEW.occurrences > OLD.occurrences
           AND (NEW.id, NEW.at, NEW.actor_id, NEW.actor_name, NEW.action, NEW.target,
                NEW.details, NEW.request_id, NEW.address, NEW.user_agent, NEW.aggregate_key)
               IS NOT DISTINCT FROM
               (OLD.id, OLD.at, OLD.actor_id, OLD.actor_name, OLD.action, OLD.target,
                OLD.details, OLD.request_id, OLD.address, OLD.user_agent, OLD.aggregate_key)
        THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;

-- Tokens that expire (`token create --expires-in DAYS`) and when each was last used (written
-- at most once a minute).
ALTER TABLE users ADD COLUMN expires_at TIMESTAMP;
ALTER TABLE users ADD COLUMN last_used_at TIMESTAMP;

-- A page session also ends after `REPRISE_SESSION_IDLE_MINUTES` without a request (written at
-- most once a minute). Sessions open at the upgrade count as idle: their people sign in again.
ALTER TABLE web_sessions ADD COLUMN last_seen_at TIMESTAMP NOT NULL DEFAULT '2000-01-01 00:00:00';

-- The distinct patients each account was shown in each clock hour (searches and reads), and
-- their number, bounded by `REPRISE_PATIENTS_PER_HOUR` across instances: the database is the
-- place they share. Rows older than the previous hour are purged.
CREATE TABLE disclosures (
    account_id TEXT NOT NULL,
    hour       TIMESTAMP NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (account_id, hour, patient_id)
);
CREATE TABLE disclosure_counts (
    account_id TEXT NOT NULL,
    hour       TIMESTAMP NOT NULL,
    shown      INTEGER NOT NULL,
    PRIMARY KEY (account_id, hour)
);
CREATE INDEX disclosures_hour ON disclosures (hour);
CREATE INDEX disclosure_counts_hour ON disclosure_counts (hour);
