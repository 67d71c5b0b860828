-- FHIR (CONTRACT §4.10): a Location's meta.lastUpdated is when its site last opened or closed
-- (null: never since it was created); the Appointment search and export by _lastUpdated /
-- _since read appointments in (updated_at, id) order.
ALTER TABLE sites ADD COLUMN updated_at TIMESTAMP;
CREATE INDEX appointments_updated ON appointments (updated_at, id);

-- Bulk exports ($export, FHIR Bulk Data Access): the job, and its files, so that any instance
-- answers the status and file URLs (instances are stateless). Rows go an hour after the end.
CREATE TABLE fhir_exports (
    id TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL,
    types TEXT NOT NULL,
    since TIMESTAMP,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL,
    progress TEXT NOT NULL DEFAULT '',
    transaction_time TIMESTAMP,
    finished_at TIMESTAMP,
    expires_at TIMESTAMP NOT NULL,
    error TEXT
);
CREATE INDEX fhir_exports_owner ON fhir_exports (owner_id, status);
-- One running export per account, also when two kick-offs arrive at once.
CREATE UNIQUE INDEX fhir_exports_one_running ON fhir_exports (owner_id) WHERE status = 'running';
CREATE TABLE fhir_export_files (
    export_id TEXT NOT NULL REFERENCES fhir_exports (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    resource_type TEXT NOT NULL,
    resources INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (export_id, seq)
);

-- The identifiers a FHIR import brought (an Appointment's, a Patient's other than the national
-- number): the same Bundle imported twice finds them and creates nothing more, and the
-- exports give them back beside reprise's own.
CREATE TABLE fhir_identifiers (
    resource_type TEXT NOT NULL,
    system TEXT NOT NULL,
    value TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    PRIMARY KEY (resource_type, system, value)
);
CREATE INDEX fhir_identifiers_resource ON fhir_identifiers (resource_id);
