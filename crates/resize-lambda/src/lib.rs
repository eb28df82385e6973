//! The Lambda adapter of resize: S3 events in, variants out.
//!
//! `bootstrap` (in `main.rs`) wires these modules to the Lambda Runtime API.
//! They are a library so the integration tests can drive [`s3::S3`] against
//! a real S3-compatible server.

//!
//! Without the default `runtime` feature only [`config`] and [`events`] are
//! built: pure parsing, no SDK, no async runtime (the fuzz targets use that).

pub mod config;
pub mod events;
#[cfg(feature = "runtime")]
pub mod handler;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod s3;
