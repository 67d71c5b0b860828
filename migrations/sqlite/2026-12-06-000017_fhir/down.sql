DROP TABLE fhir_identifiers;
DROP TABLE fhir_export_files;
DROP TABLE fhir_exports;
DROP INDEX appointments_updated;
ALTER TABLE sites DROP COLUMN updated_at;
