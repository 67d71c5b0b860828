-- The call centre: every incoming call, and whether the centre is taking calls.

CREATE TABLE calls (
    id                 TEXT PRIMARY KEY NOT NULL,
    received_at        TIMESTAMP NOT NULL,
    caller_phone       TEXT,
    patient_id         TEXT REFERENCES patients (id),
    appointment_id     TEXT REFERENCES appointments (id),
    reason             TEXT NOT NULL CHECK (reason IN ('appointment_status', 'reschedule_request',
                           'cancellation', 'medical_question', 'prescription', 'results',
                           'administrative', 'other')),
    outcome            TEXT NOT NULL CHECK (outcome IN ('informed', 'forwarded_to_service',
                           'callback_scheduled', 'appointment_cancelled', 'abandoned')),
    duration_seconds   INTEGER CHECK (duration_seconds >= 0),
    notes              TEXT,
    callback_requested BOOLEAN NOT NULL DEFAULT FALSE,
    agent_id           TEXT,
    -- One call per Idempotency-Key, enforced here; the hash tells a replay from a reuse.
    idempotency_key    TEXT UNIQUE,
    request_hash       TEXT,
    import_id          TEXT,
    created_at         TIMESTAMP NOT NULL
);
-- Newest-first keyset pages, and statistics read from the index alone.
CREATE INDEX calls_received ON calls (received_at, id);
CREATE INDEX calls_stats ON calls (received_at, reason, outcome, duration_seconds);
CREATE INDEX calls_patient ON calls (patient_id);

-- Calls per UTC hour, reason and outcome, kept up to date in the transaction of every insert:
-- statistics over a million calls read a few thousand rows of this, not the calls.
CREATE TABLE call_hours (
    hour         TIMESTAMP NOT NULL,
    reason       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    calls        BIGINT NOT NULL,
    duration_sum BIGINT NOT NULL,
    durations    BIGINT NOT NULL,
    PRIMARY KEY (hour, reason, outcome)
);

CREATE TABLE call_centre (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    status     TEXT NOT NULL CHECK (status IN ('active', 'deactivated')),
    changed_at TIMESTAMP NOT NULL,
    changed_by TEXT
);
INSERT INTO call_centre (id, status, changed_at) VALUES (1, 'active', CURRENT_TIMESTAMP);
