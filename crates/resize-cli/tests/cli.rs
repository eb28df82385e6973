//! End-to-end tests of the `resize-cli` binary.
//!
//! Every test runs the real binary (`CARGO_BIN_EXE_resize-cli`) with
//! `std::process::Command` on a temporary copy of `fixtures/`, with the
//! setting variables (SIZES, FORMATS, …) removed from its environment, and
//! checks what a user would see: exit codes, files on disk afterwards,
//! decoded pixel sizes and colours, and the printed report.
//!
//! The modules live in `tests/cli/`; this file is the one test binary.

#[path = "cli/support.rs"]
mod support;

#[path = "cli/batch.rs"]
mod batch;
#[path = "cli/browser.rs"]
mod browser;
#[path = "cli/incremental.rs"]
mod incremental;
#[path = "cli/keys.rs"]
mod keys;
#[path = "cli/manifest.rs"]
mod manifest;
#[path = "cli/pixels.rs"]
mod pixels;
#[path = "cli/recursion.rs"]
mod recursion;
#[path = "cli/robustness.rs"]
mod robustness;
#[path = "cli/s3.rs"]
mod s3;
#[path = "cli/usage.rs"]
mod usage;
