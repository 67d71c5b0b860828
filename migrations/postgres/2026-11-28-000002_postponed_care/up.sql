-- Postponed care: patients, appointments, their status history, incidents.
-- Postponement is recorded on the appointment itself (incident_id, postponed_at) so that an
-- incident is one set-based UPDATE; appointment_events keeps the moves people make.

CREATE TABLE patients (
    id              TEXT PRIMARY KEY NOT NULL,
    national_number TEXT UNIQUE,
    last_name       TEXT NOT NULL,
    first_name      TEXT NOT NULL,
    birth_date      DATE NOT NULL,
    phone           TEXT,
    email           TEXT,
    language        TEXT NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'nl', 'de', 'en')),
    email_consent   BOOLEAN NOT NULL DEFAULT FALSE,
    -- Lower-case ASCII forms of the names that searches compare (domain::patient::search_key).
    last_name_key   TEXT COLLATE "C" NOT NULL,
    first_name_key  TEXT COLLATE "C" NOT NULL,
    import_id       TEXT,
    created_at      TIMESTAMP NOT NULL
);
-- A name search reads one of these in order and stops after a page: no sort, whatever the
-- number of namesakes.
CREATE INDEX patients_last_name_key ON patients (last_name_key, first_name_key, id);
CREATE INDEX patients_first_name_key ON patients (first_name_key, last_name_key, id);
CREATE INDEX patients_phone ON patients (phone);

CREATE TABLE incidents (
    id             TEXT PRIMARY KEY NOT NULL,
    title          TEXT NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    postpone_until TIMESTAMP NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    created_by     TEXT
);

CREATE TABLE incident_sites (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    site_code   TEXT NOT NULL REFERENCES sites (code),
    PRIMARY KEY (incident_id, site_code)
);

CREATE TABLE appointments (
    id                    TEXT PRIMARY KEY NOT NULL,
    patient_id            TEXT NOT NULL REFERENCES patients (id),
    site_code             TEXT NOT NULL REFERENCES sites (code),
    service_code          TEXT NOT NULL REFERENCES services (code),
    kind                  TEXT NOT NULL CHECK (kind IN ('operation', 'consultation')),
    label                 TEXT NOT NULL,
    -- The date first given; never changed. scheduled_at is the current one.
    original_scheduled_at TIMESTAMP NOT NULL,
    scheduled_at          TIMESTAMP NOT NULL,
    priority              INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 4),
    urgent                BOOLEAN NOT NULL DEFAULT FALSE,
    essential             BOOLEAN NOT NULL DEFAULT FALSE,
    status                TEXT NOT NULL DEFAULT 'scheduled'
                          CHECK (status IN ('scheduled', 'postponed', 'rescheduled', 'cancelled')),
    incident_id           TEXT REFERENCES incidents (id),
    postponed_at          TIMESTAMP,
    import_id             TEXT,
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL
);
CREATE INDEX appointments_site_status_at ON appointments (site_code, status, scheduled_at);
CREATE INDEX appointments_site_status_order ON appointments (site_code, status, priority, original_scheduled_at);
CREATE INDEX appointments_service_status ON appointments (service_code, status);
CREATE INDEX appointments_patient ON appointments (patient_id);

CREATE TABLE appointment_events (
    id             BIGSERIAL PRIMARY KEY,
    appointment_id TEXT NOT NULL REFERENCES appointments (id),
    at             TIMESTAMP NOT NULL,
    from_status    TEXT NOT NULL,
    to_status      TEXT NOT NULL,
    -- The new date of a reschedule.
    scheduled_at   TIMESTAMP,
    reason         TEXT,
    note           TEXT,
    actor_id       TEXT
);
CREATE INDEX appointment_events_appointment ON appointment_events (appointment_id, id);
