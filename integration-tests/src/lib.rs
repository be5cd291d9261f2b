//! Privileged test harness.
pub mod postgres;
