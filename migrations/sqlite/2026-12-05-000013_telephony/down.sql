DROP INDEX users_extension;
ALTER TABLE users DROP COLUMN extension;
DROP TABLE phone_calls;
DROP TABLE pbx_tokens;
