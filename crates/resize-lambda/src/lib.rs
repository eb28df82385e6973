//! The Lambda adapter of resize: S3 events in, variants out.
//!
//! `bootstrap` (in `main.rs`) wires these modules to the Lambda Runtime API.
//! Every S3 call goes through `resize-s3`; every decision about a key is
//! the core's job.

//!
//! Without the default `runtime` feature only [`batch`], [`config`], [`events`], [`key`],
//! [`metrics`] and [`task`] are built: pure parsing and results, no SDK, no async runtime
//! (the fuzz targets use that).

#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod events;
#[cfg(feature = "runtime")]
pub mod handler;
pub mod key;
pub mod metrics;
pub mod task;
