//! One integration-test binary: each module drives the real application over HTTP.
//! Runs on SQLite, or on PostgreSQL when `REPRISE_TEST_POSTGRES_URL` is set.

mod access;
mod answers;
mod appointments;
mod audit;
mod backup;
mod browser;
mod calls;
mod cli;
mod concurrency;
mod contact_lists;
mod crash;
mod demo;
mod email;
mod errors;
mod files;
mod health;
mod helpers;
mod hostile;
mod imports;
mod incidents;
mod logs;
mod notifications;
mod operations;
mod outage;
mod patients;
mod planning;
mod ratelimit;
mod reopening;
mod secrets;
mod security;
mod sites;
mod smtp_sink;
mod soak;
mod users;
mod web;
