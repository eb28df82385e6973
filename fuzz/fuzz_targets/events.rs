//! Event documents: any JSON (and any key text) through the parser that
//! turns S3, SQS, SNS and EventBridge events into tasks. Never panics;
//! decoded keys are what S3 would have encoded.

#![no_main]

use libfuzzer_sys::fuzz_target;
use resize_lambda::events::{decode_key, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_key(text);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = parse(&value);
    }
});
