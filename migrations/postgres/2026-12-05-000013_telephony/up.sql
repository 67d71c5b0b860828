-- The telephone system (CONTRACT §4.9): the PBXs that push call events, each with a token
-- stored as its SHA-256; the calls they report, one row per PBX call id; and the telephone
-- extension of an account, matched against `answeringNumber` and `user[]`.
CREATE TABLE pbx_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP
);

CREATE TABLE phone_calls (
    id               TEXT PRIMARY KEY NOT NULL,
    pbx_id           TEXT NOT NULL REFERENCES pbx_tokens (id),
    pbx_call_id      TEXT NOT NULL,
    direction        TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    from_number      TEXT NOT NULL,
    to_number        TEXT NOT NULL,
    queue            TEXT,
    started_at       TIMESTAMP NOT NULL,
    answered_at      TIMESTAMP,
    ended_at         TIMESTAMP,
    cause            TEXT,
    answered_by      TEXT REFERENCES users (id),
    answering_number TEXT,
    call_id          TEXT REFERENCES calls (id),
    UNIQUE (pbx_id, pbx_call_id)
);
-- The caller log, newest first, and the callers' numbers matched to patients' phones.
CREATE INDEX phone_calls_started ON phone_calls (started_at, id);
CREATE INDEX phone_calls_from ON phone_calls (from_number);

ALTER TABLE users ADD COLUMN extension TEXT;
-- One live account per extension, also when two instances create accounts at once.
CREATE UNIQUE INDEX users_extension ON users (extension)
    WHERE extension IS NOT NULL AND deleted_at IS NULL;
