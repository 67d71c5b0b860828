-- Callbacks (CONTRACT §4.9): the patients to call back after a missed call, or because an
-- agent promised it. At most one open callback per number, also when several instances
-- record missed calls at once: the partial unique index below, which every insert names in
-- its ON CONFLICT clause. "claimed" is not stored: it is an open callback whose claim
-- (claimed_at) is younger than 15 minutes.
CREATE TABLE callbacks (
    id          TEXT PRIMARY KEY NOT NULL,
    phone       TEXT NOT NULL,
    patient_id  TEXT REFERENCES patients (id),
    source      TEXT NOT NULL CHECK (source IN ('missed_call', 'requested')),
    due_at      TIMESTAMP NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    claimed_by  TEXT REFERENCES users (id),
    claimed_at  TIMESTAMP,
    attempts    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL CHECK (status IN ('open', 'done', 'unreachable')),
    done_at     TIMESTAMP,
    reached_at  TIMESTAMP,
    missed_at   TIMESTAMP,
    call_id     TEXT REFERENCES calls (id)
);
CREATE UNIQUE INDEX callbacks_open_phone ON callbacks (phone) WHERE status = 'open';
-- The worklist, oldest due first, per status.
CREATE INDEX callbacks_status_due ON callbacks (status, due_at, id);
CREATE INDEX callbacks_due ON callbacks (due_at, id);

CREATE TABLE callback_attempts (
    id          TEXT PRIMARY KEY NOT NULL,
    callback_id TEXT NOT NULL REFERENCES callbacks (id),
    agent       TEXT REFERENCES users (id),
    outcome     TEXT NOT NULL CHECK (outcome IN ('reached', 'no_answer', 'voicemail', 'wrong_number')),
    note        TEXT,
    at          TIMESTAMP NOT NULL
);
CREATE INDEX callback_attempts_callback ON callback_attempts (callback_id, at);

-- The callback a missed call opened or joined.
ALTER TABLE phone_calls ADD COLUMN callback_id TEXT REFERENCES callbacks (id);
CREATE INDEX phone_calls_callback ON phone_calls (callback_id);
