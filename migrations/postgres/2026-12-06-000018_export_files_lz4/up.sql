-- A bulk export's files are stored LZ4-compressed by reprise (bytes, not text): PostgreSQL
-- stores and reads back about a sixth of the bytes, and does not compress them again
-- (STORAGE EXTERNAL). Exports live an hour: those of before the upgrade are dropped (an
-- integration engine starts another).
-- Held until the end: an older instance still running cannot store a file in between.
LOCK TABLE fhir_exports, fhir_export_files IN ACCESS EXCLUSIVE MODE;
DELETE FROM fhir_export_files;
DELETE FROM fhir_exports;
ALTER TABLE fhir_export_files DROP COLUMN body;
ALTER TABLE fhir_export_files ADD COLUMN body_lz4 BYTEA NOT NULL;
ALTER TABLE fhir_export_files ALTER COLUMN body_lz4 SET STORAGE EXTERNAL;
