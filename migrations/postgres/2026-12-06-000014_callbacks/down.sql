DROP INDEX phone_calls_callback;
ALTER TABLE phone_calls DROP COLUMN callback_id;
DROP TABLE callback_attempts;
DROP TABLE callbacks;
