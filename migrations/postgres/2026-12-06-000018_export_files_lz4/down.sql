-- Held until the end: an older instance still running cannot store a file in between.
LOCK TABLE fhir_exports, fhir_export_files IN ACCESS EXCLUSIVE MODE;
DELETE FROM fhir_export_files;
DELETE FROM fhir_exports;
ALTER TABLE fhir_export_files DROP COLUMN body_lz4;
ALTER TABLE fhir_export_files ADD COLUMN body TEXT NOT NULL;
