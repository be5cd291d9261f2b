//! edge-agent: the database latency benchmark API each edge region runs, and the sweep that
//! compares the regions. The HTTP API keeps the original Go backend's shape.

pub mod benchmark;
pub mod config;
pub mod db;
pub mod hub;
pub mod metrics;
pub mod regions;
pub mod render;
pub mod secret;
pub mod server;
pub mod stats;
pub mod sweep;
pub mod tcp_info;
pub mod tls;
