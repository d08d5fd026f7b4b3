//! docker-image-exporter: per-image container references by state, for Prometheus.
//!
//! The binary in `main.rs` wires these modules together; they are a library so that tests and
//! benchmarks can drive each one on its own.

pub mod cli;
pub mod engine;
pub mod logging;
pub mod model;
pub mod render;
pub mod scanner;
pub mod server;
pub mod snapshot;
pub mod web_config;
