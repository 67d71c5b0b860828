DELETE FROM fhir_export_files;
DELETE FROM fhir_exports;
ALTER TABLE fhir_export_files DROP COLUMN body_lz4;
ALTER TABLE fhir_export_files ADD COLUMN body TEXT NOT NULL;
