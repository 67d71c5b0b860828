DROP TABLE audit_log;
DROP TABLE user_services;
DROP TABLE users;
DROP TABLE services;
DROP TABLE sites;
