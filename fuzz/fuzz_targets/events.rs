//! Event documents: any JSON (and any key text) through the parser that
//! turns S3, SQS, SNS, EventBridge and S3 Batch Operations events into
//! tasks. Never panics. A Batch Operations invocation answers exactly the
//! tasks that carry a task id, each once, echoing the invocation, and its
//! result strings stay within their bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use resize_lambda::batch::{self, ResultCode, TaskAnswer, RESULT_STRING_MAX};
use resize_lambda::events::{decode_key, parse};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_key(text);
        let _ = batch::bucket_of_arn(text);
        let answer = TaskAnswer::new("t", ResultCode::PermanentFailure, text);
        assert!(answer.text.len() <= RESULT_STRING_MAX);
        assert!(text.starts_with(answer.text.trim_end_matches('…')));
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let _ = parse(&value);
        if batch::is_batch(&value) {
            let job = batch::parse(&value);
            let with_id = value["tasks"]
                .as_array()
                .map_or(0, |t| t.iter().filter(|t| t["taskId"].is_string()).count());
            let without_id = value["tasks"].as_array().map_or(0, Vec::len) - with_id;
            assert_eq!(job.tasks.len(), with_id);
            assert_eq!(job.unanswerable, without_id);
            let answers: Vec<TaskAnswer> = job
                .tasks
                .iter()
                .map(|t| TaskAnswer::new(&t.task_id, ResultCode::Succeeded, "ok"))
                .collect();
            let response = batch::response(&job, &answers);
            assert_eq!(response["invocationId"], value["invocationId"].as_str().map_or(Value::Null, Value::from));
            assert_eq!(response["results"].as_array().map_or(0, Vec::len), with_id);
            for task in &job.tasks {
                if let Ok(target) = &task.target {
                    assert!(!target.bucket.is_empty() && !target.bucket.contains('/'));
                }
            }
        }
    }
});
