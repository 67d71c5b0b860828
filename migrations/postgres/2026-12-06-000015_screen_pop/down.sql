DROP INDEX phone_calls_answered_by;
