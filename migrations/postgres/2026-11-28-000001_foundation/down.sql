DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE user_services;
DROP TABLE users;
DROP TABLE services;
DROP TABLE sites;
