-- Foundation: sites, services, accounts and the audit log.
-- Portable types only (see docs/database.md): ids TEXT, times TIMESTAMP in UTC.

CREATE TABLE sites (
    code            TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('hospital', 'nursing_home')),
    operating_rooms INTEGER NOT NULL CHECK (operating_rooms >= 0),
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    programme       TEXT CHECK (programme IN ('full', 'moderate')),
    reopened_at     TIMESTAMP,
    reopening_rank  INTEGER,
    created_at      TIMESTAMP NOT NULL
);

CREATE TABLE services (
    code              TEXT PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL,
    site_code         TEXT NOT NULL REFERENCES sites (code),
    secretariat_email TEXT,
    secretariat_phone TEXT,
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX services_site_code ON services (site_code);

CREATE TABLE users (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'coordinator', 'secretary', 'agent')),
    -- SHA-256 of the token; NULL once the account is deleted, so the token dies with it.
    token_hash TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);

CREATE TABLE user_services (
    user_id      TEXT NOT NULL REFERENCES users (id),
    service_code TEXT NOT NULL REFERENCES services (code),
    PRIMARY KEY (user_id, service_code)
);

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMP NOT NULL,
    actor_id   TEXT,
    actor_name TEXT,
    action     TEXT NOT NULL,
    target     TEXT,
    details    TEXT NOT NULL DEFAULT '{}',
    request_id TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
