//! The Lambda adapter of resize: S3 events in, variants out.
//!
//! `bootstrap` (in `main.rs`) wires these modules to the Lambda Runtime API.
//! They are a library so the integration tests can drive [`s3::S3`] against
//! a real S3-compatible server.

pub mod config;
pub mod events;
pub mod handler;
pub mod metrics;
pub mod s3;
