ALTER TABLE phone_calls DROP COLUMN answerers;
