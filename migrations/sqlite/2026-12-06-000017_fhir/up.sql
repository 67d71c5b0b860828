-- FHIR (CONTRACT §4.10): a Location's meta.lastUpdated is when its site last opened or closed
-- (null: never since it was created); the Appointment search and export by _lastUpdated /
-- _since read appointments in (updated_at, id) order.
ALTER TABLE sites ADD COLUMN updated_at TIMESTAMP;
CREATE INDEX appointments_updated ON appointments (updated_at, id);
