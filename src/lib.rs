//! reprise: get patients back after a hospital IT shutdown.
//!
//! Layers, data flowing one way: `routes` (HTTP API) and `web` (pages) → `domain` (rules, valid types) → `db`
//! (diesel, both backends). See `docs/architecture.md`.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod demo;
pub mod denials;
pub mod domain;
pub mod email;
pub mod error;
pub mod files;
pub mod http;
pub mod i18n;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod secrets;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tokens;
pub mod web;
