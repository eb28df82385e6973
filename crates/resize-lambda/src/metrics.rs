//! CloudWatch Embedded Metric Format: one JSON line per invocation on
//! stdout, which CloudWatch Logs turns into metrics without API calls.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::task::{Fate, TaskResult};

/// Counters of one invocation.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Sources whose variants were written.
    pub images: u64,
    /// Variants written.
    pub variants: u64,
    /// Tasks skipped for a normal reason.
    pub skipped: u64,
    /// Tasks that failed.
    pub failures: u64,
    /// Variants deleted with their sources.
    pub deleted: u64,
    /// Bytes read from sources.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// How long the invocation took.
    pub duration_ms: f64,
}

impl Metrics {
    /// Counts one task's result.
    pub fn record(&mut self, result: &TaskResult) {
        match result.fate() {
            Fate::Written {
                variants,
                bytes_in,
                bytes_out,
                ..
            } => {
                self.images += 1;
                self.variants += variants as u64;
                self.bytes_in += bytes_in;
                self.bytes_out += bytes_out;
            }
            Fate::Deleted(n) => self.deleted += n as u64,
            Fate::Skipped(_) => self.skipped += 1,
            Fate::Failed { .. } => self.failures += 1,
        }
    }

    /// The EMF document.
    pub fn to_emf(&self, timestamp_ms: u128) -> serde_json::Value {
        let metric = |name: &str, unit: &str| json!({ "Name": name, "Unit": unit });
        json!({
            "_aws": {
                "Timestamp": timestamp_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": "resize",
                    "Dimensions": [[]],
                    "Metrics": [
                        metric("Images", "Count"),
                        metric("Variants", "Count"),
                        metric("Skipped", "Count"),
                        metric("Failures", "Count"),
                        metric("Deleted", "Count"),
                        metric("BytesIn", "Bytes"),
                        metric("BytesOut", "Bytes"),
                        metric("Duration", "Milliseconds"),
                    ],
                }],
            },
            "Images": self.images,
            "Variants": self.variants,
            "Skipped": self.skipped,
            "Failures": self.failures,
            "Deleted": self.deleted,
            "BytesIn": self.bytes_in,
            "BytesOut": self.bytes_out,
            "Duration": self.duration_ms,
        })
    }

    /// Prints the EMF line.
    pub fn emit(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        println!("{}", self.to_emf(now));
    }
}
