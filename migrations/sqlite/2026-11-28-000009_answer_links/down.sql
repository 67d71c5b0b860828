ALTER TABLE appointments DROP COLUMN last_answer;
ALTER TABLE contact_attempts DROP COLUMN answer;
DROP TABLE answer_links;
DROP TABLE link_keys;
