DROP INDEX appointments_to_contact;
ALTER TABLE appointments DROP COLUMN patient_request;
ALTER TABLE contact_attempts DROP COLUMN answer;
DROP TABLE answer_links;
DROP TABLE link_keys;
