-- Patients answer by email: each `site_reopened` and `appointment_rescheduled` email carries,
-- for each appointment it speaks of, a link to a page where the patient keeps the date, asks
-- for another, asks to be called back, or withdraws. See docs/operations.md, "Patients answer by email".

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
    -- The date the email offered to keep (a proposed day at the original time of day); an
    -- answer keeps this date or none.
    proposed_for    TIMESTAMP,
    used_at         TIMESTAMP,
    answer          TEXT CHECK (answer IN ('keep', 'other_date', 'call_back', 'withdraw')),
    UNIQUE (notification_id, appointment_id)
);
CREATE INDEX answer_links_appointment ON answer_links (appointment_id);

-- The patient's own answer, on the contact attempt that records it (null for staff's).
-- (No CHECK: SQLite cannot drop a column a CHECK names; the domain checks it.)
ALTER TABLE contact_attempts ADD COLUMN answer TEXT;
-- A patient's request by email still to act on (`other_date`, `call_back`): it keeps the
-- appointment on the contact list, rescheduled or not, until a secretary reaches the patient
-- or the appointment moves.
ALTER TABLE appointments ADD COLUMN patient_request TEXT;

-- The contact list's rows in the list's order (db::contact_list::TO_CONTACT, written the same
-- there: a partial index is used only by a query that states its condition).
CREATE INDEX appointments_to_contact ON appointments (site_code, priority, original_scheduled_at)
    WHERE (status = 'postponed' AND reached_at IS NULL) OR patient_request IS NOT NULL;
