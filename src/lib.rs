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
pub(crate) mod denials;
pub mod domain;
pub mod email;
pub mod error;
pub mod fhir;
pub mod files;
pub(crate) mod http;
pub(crate) mod i18n;
pub mod metrics;
pub(crate) mod middleware;
pub mod openapi;
pub(crate) mod pops;
pub(crate) mod ratelimit;
pub(crate) mod routes;
pub(crate) mod secrets;
pub mod service;
pub mod startup;
pub(crate) mod state;
pub(crate) mod telemetry;
pub(crate) mod tokens;
pub(crate) mod web;
