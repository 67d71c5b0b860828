-- Planning the reopening: the capacity each site and service reopens with, the expected
-- length of operations, and the day proposed to each postponed appointment.
-- (Checks of the added columns are in the domain: SQLite cannot drop a column that a CHECK
-- names, and down.sql must run.)

-- Minutes of one operating-room session a day (8 hours by default).
ALTER TABLE sites ADD COLUMN session_minutes INTEGER NOT NULL DEFAULT 480;

-- One day's operating-room capacity that differs from the site's usual one (a weekend
-- opened, a room closed for maintenance).
CREATE TABLE site_capacity_days (
    site_code       TEXT NOT NULL REFERENCES sites (code),
    day             DATE NOT NULL,
    rooms_open      INTEGER NOT NULL CHECK (rooms_open >= 0),
    session_minutes INTEGER NOT NULL CHECK (session_minutes BETWEEN 0 AND 1440),
    PRIMARY KEY (site_code, day)
);

-- Consultations a service can see each working day, and how long its operations take when
-- their label has no duration of its own.
ALTER TABLE services ADD COLUMN consultation_slots INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN operation_minutes INTEGER NOT NULL DEFAULT 120;

CREATE TABLE operation_durations (
    service_code TEXT NOT NULL REFERENCES services (code),
    label        TEXT NOT NULL,
    minutes      INTEGER NOT NULL CHECK (minutes BETWEEN 1 AND 1440),
    PRIMARY KEY (service_code, label)
);

-- The day a committed plan proposes; the status stays `postponed` until a secretary confirms
-- it by phone (a reschedule).
ALTER TABLE appointments ADD COLUMN proposed_at DATE;
