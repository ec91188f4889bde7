//! stowage: a catalog of folders and items over files in buckets, kept in sync, with durable jobs.
//!
//! The modules follow the house plan: `http` and `cli` call `services`; `services` call `store`
//! and `domain`; `domain` calls nothing.

#![warn(missing_docs)]

pub mod app;
pub mod background;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod watch;
