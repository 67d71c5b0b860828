-- The email outbox: a notification is queued in the transaction of the change that causes it.
CREATE TABLE notifications (
    id              TEXT PRIMARY KEY NOT NULL,
    patient_id      TEXT NOT NULL REFERENCES patients (id),
    appointment_id  TEXT REFERENCES appointments (id),
    template        TEXT NOT NULL CHECK (template IN ('appointment_postponed', 'site_reopened', 'appointment_rescheduled')),
    language        TEXT NOT NULL,
    to_address      TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP,
    created_at      TIMESTAMP NOT NULL,
    -- (appointment or patient, template, date): a second copy cannot exist.
    dedup_key       TEXT NOT NULL UNIQUE
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_patient ON notifications (patient_id);
