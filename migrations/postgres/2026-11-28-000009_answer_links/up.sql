-- Patients answer by email: each `site_reopened` and `appointment_rescheduled` email carries,
-- for each appointment it speaks of, a link to a page where the patient keeps the date, asks
-- for another, asks to be called back, or withdraws. See docs/answers.md.

-- The key that signs the links (HMAC-SHA256), made at the first start and shared by every
-- process on this database.
CREATE TABLE link_keys (
    name       TEXT PRIMARY KEY NOT NULL,
    secret     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- One link per email and appointment. The URL holds the id and its signature, nothing else;
-- the first answer uses the link up.
CREATE TABLE answer_links (
    id              TEXT PRIMARY KEY NOT NULL,
    notification_id TEXT NOT NULL REFERENCES notifications (id),
    appointment_id  TEXT NOT NULL REFERENCES appointments (id),
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    used_at         TIMESTAMP,
    answer          TEXT CHECK (answer IN ('keep', 'other_date', 'call_back', 'withdraw')),
    UNIQUE (notification_id, appointment_id)
);
CREATE INDEX answer_links_appointment ON answer_links (appointment_id);

-- The patient's own answer, on the contact attempt that records it (null for staff's).
-- (No CHECK: SQLite cannot drop a column a CHECK names; the domain checks it.)
ALTER TABLE contact_attempts ADD COLUMN answer TEXT;
-- The answer of the latest attempt, beside `last_outcome`, for the contact list.
ALTER TABLE appointments ADD COLUMN last_answer TEXT;
