//! Integration tests of the Lambda with real components: S3 is moto's
//! server (`moto_server` from PyPI, a child process per test), and the
//! function is the real `bootstrap` binary, driven through a local
//! implementation of the Lambda Runtime API.
//!
//! moto is found at `$MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`;
//! `.ci/run` / `cargo xtask ci` install it. The tests fail, never skip,
//! when it is missing.

#[path = "lambda/batch.rs"]
mod batch;
#[path = "lambda/bench.rs"]
mod bench;
#[path = "lambda/faults.rs"]
mod faults;
#[path = "lambda/harness.rs"]
mod harness;
#[path = "lambda/invocations.rs"]
mod invocations;
#[path = "lambda/load.rs"]
mod load;
#[path = "lambda/manifest.rs"]
mod manifest;
#[path = "lambda/memory.rs"]
mod memory;
