//! Helpers for `cargo xtask bench`, built in release so they measure fairly:
//! `pipeline2019` (the 2019 Lambda's pipeline on today's image crate, the
//! baseline) and `score` (SSIMULACRA2 of outputs against a linear-light
//! Lanczos3 reference resize of the full decode).
