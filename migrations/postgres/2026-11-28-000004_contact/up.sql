-- Reopening sites and getting patients back: contact attempts, and what each reopening opened.

ALTER TABLE sites ADD COLUMN operating_rooms_open INTEGER;

-- When a contact attempt first reached the patient: the contact list is the postponed
-- appointments without one.
ALTER TABLE appointments ADD COLUMN reached_at TIMESTAMP;
-- The contact list's attempt columns, kept with each attempt, so that exporting a list is one
-- ordered read with no per-row subquery.
ALTER TABLE appointments ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE appointments ADD COLUMN last_outcome TEXT;
ALTER TABLE appointments ADD COLUMN last_attempt_at TIMESTAMP;

CREATE TABLE contact_attempts (
    id             TEXT PRIMARY KEY NOT NULL,
    appointment_id TEXT NOT NULL REFERENCES appointments (id),
    at             TIMESTAMP NOT NULL,
    channel        TEXT NOT NULL CHECK (channel IN ('phone', 'email', 'letter')),
    outcome        TEXT NOT NULL CHECK (outcome IN ('reached', 'no_answer', 'voicemail', 'wrong_number', 'declined')),
    note           TEXT,
    actor_id       TEXT
);
CREATE INDEX contact_attempts_appointment ON contact_attempts (appointment_id, at);
