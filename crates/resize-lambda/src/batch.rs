//! S3 Batch Operations: a `LambdaInvoke` job's event in, one result per
//! task out. Pure: parsing never fails, and whatever a task lacks becomes
//! that task's permanent failure with the reason, so the completion report
//! says what was wrong.
//!
//! Both invocation schemas are read:
//! - `1.0` names the bucket by ARN (`tasks[].s3BucketArn`);
//! - `2.0` names it plainly (`tasks[].s3Bucket`) and carries the job's
//!   `userArguments` (`job.userArguments`).
//!
//! Keys arrive URL-encoded, as in S3 notifications (`+` is a space, `%XX`
//! a UTF-8 byte), and are decoded by [`decode_key`].

use serde::Serialize;
use serde_json::{json, Value};

use crate::key::decode_key;

/// The invocation schema versions this function reads.
pub const SCHEMAS: [&str; 2] = ["1.0", "2.0"];

/// The `userArguments` this function takes, for messages.
pub const ARGUMENTS: &str = "force";

/// Why a task (or every task of a job) cannot run: each fails permanently
/// with this message as its result string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The invocation's schema is one this function does not read.
    #[error("invocationSchemaVersion `{0}` is not supported (this function reads {schemas})", schemas = SCHEMAS.join(" and "))]
    Schema(String),
    /// The invocation's schema is missing or not a string.
    #[error("invocationSchemaVersion is not a string")]
    NoSchema,
    /// The task names no bucket.
    #[error("the task names no bucket (s3Bucket or s3BucketArn)")]
    NoBucket,
    /// The task names no key.
    #[error("the task names no key (s3Key)")]
    NoKey,
    /// The key does not decode.
    #[error("key `{0}` is not valid URL-encoded UTF-8")]
    Key(String),
    /// `s3Bucket` is not a bucket's name.
    #[error("`{0}` is not a bucket name")]
    BucketName(String),
    /// `s3BucketArn` is not a bucket's ARN.
    #[error("`{0}` is not the ARN of a bucket")]
    BucketArn(String),
    /// `userArguments` is not an object.
    #[error("userArguments must be an object of strings, not {0}")]
    ArgumentsShape(String),
    /// `force` is not a boolean.
    #[error("userArguments: `force` must be \"true\" or \"false\", not {0}")]
    Force(String),
    /// An argument this function does not take.
    #[error("userArguments: unknown argument `{0}` (this function takes: {ARGUMENTS})")]
    UnknownArgument(String),
}

/// The longest `resultString` sent back, in bytes. S3 documents no limit;
/// the completion report is a CSV read by people, so a long error chain
/// is cut there (the log has it whole).
pub const RESULT_STRING_MAX: usize = 1024;

/// One invocation of a Batch Operations job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchJob {
    /// `invocationSchemaVersion` as sent, echoed in the response.
    pub schema: Option<String>,
    /// `invocationId` as sent, echoed in the response.
    pub invocation_id: Option<String>,
    /// `job.id`, for the log.
    pub job_id: Option<String>,
    /// The job's arguments, or why they are unusable (then every task
    /// fails permanently with that reason: a typo must not run a job).
    pub arguments: Result<Arguments, BatchError>,
    /// The tasks that carry a task id, in event order.
    pub tasks: Vec<BatchTask>,
    /// Tasks without a task id: they cannot be answered, and S3 counts
    /// them as `treatMissingKeysAs`.
    pub unanswerable: usize,
}

/// What the job asks of every task (`job.userArguments`, schema 2.0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Arguments {
    /// `"force": "true"`: rebuild variants even when they are current.
    pub force: bool,
}

/// One task: the object it names, or why it names none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchTask {
    /// `taskId`, echoed in its result.
    pub task_id: String,
    /// The object.
    pub target: Result<Target, BatchError>,
}

/// An object named by a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The bucket's name.
    pub bucket: String,
    /// The key, decoded.
    pub key: String,
    /// `s3VersionId`, when the manifest names a version.
    pub version_id: Option<String>,
}

/// How S3 Batch Operations counts a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ResultCode {
    /// Done: variants written, already current, or nothing to do.
    Succeeded,
    /// Worth another try; S3 runs the task again before the job ends.
    TemporaryFailure,
    /// Retrying cannot help; the report gives the reason.
    PermanentFailure,
}

/// One task's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskAnswer {
    /// The task's id.
    pub task_id: String,
    /// Its code.
    pub code: ResultCode,
    /// What happened, for the completion report.
    pub text: String,
}

impl TaskAnswer {
    /// An answer, its text cut to [`RESULT_STRING_MAX`] bytes.
    pub fn new(task_id: &str, code: ResultCode, text: &str) -> TaskAnswer {
        TaskAnswer {
            task_id: task_id.to_owned(),
            code,
            text: shortened(text, RESULT_STRING_MAX),
        }
    }
}

/// Whether `payload` is a Batch Operations invocation.
pub fn is_batch(payload: &Value) -> bool {
    payload.get("invocationSchemaVersion").is_some() && payload.get("tasks").is_some()
}

/// Parses a Batch Operations invocation (see [`is_batch`]).
pub fn parse(payload: &Value) -> BatchJob {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let schema = text(payload.get("invocationSchemaVersion"));
    let schema_error = match schema.as_deref() {
        Some(s) if SCHEMAS.contains(&s) => None,
        Some(s) => Some(BatchError::Schema(s.to_owned())),
        None => Some(BatchError::NoSchema),
    };
    let mut tasks = Vec::new();
    let mut unanswerable = 0;
    for task in payload
        .get("tasks")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let Some(task_id) = task.get("taskId").and_then(Value::as_str) else {
            unanswerable += 1;
            continue;
        };
        let target = match &schema_error {
            Some(why) => Err(why.clone()),
            None => target(task),
        };
        tasks.push(BatchTask {
            task_id: task_id.to_owned(),
            target,
        });
    }
    BatchJob {
        schema,
        invocation_id: text(payload.get("invocationId")),
        job_id: text(payload.pointer("/job/id")),
        arguments: arguments(payload.pointer("/job/userArguments")),
        tasks,
        unanswerable,
    }
}

fn target(task: &Value) -> Result<Target, BatchError> {
    let field = |name: &str| task.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    // Either schema's field is taken: 2.0 names the bucket, 1.0 its ARN.
    let bucket = match (field("s3Bucket"), field("s3BucketArn")) {
        (Some(name), _) => bucket_name(name)?,
        (None, Some(arn)) => bucket_of_arn(arn)?,
        (None, None) => return Err(BatchError::NoBucket),
    };
    let encoded = field("s3Key").ok_or(BatchError::NoKey)?;
    let key = decode_key(encoded).ok_or_else(|| BatchError::Key(encoded.to_owned()))?;
    Ok(Target {
        bucket,
        key,
        version_id: field("s3VersionId").map(str::to_owned),
    })
}

fn bucket_name(name: &str) -> Result<String, BatchError> {
    if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) {
        Err(BatchError::BucketName(name.to_owned()))
    } else {
        Ok(name.to_owned())
    }
}

/// `arn:PARTITION:s3:REGION:ACCOUNT:BUCKET` (region and account may be
/// empty, as in `arn:aws:s3:::photos`) to `BUCKET`.
pub fn bucket_of_arn(arn: &str) -> Result<String, BatchError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "s3", _, _, bucket] if !partition.is_empty() && !bucket.is_empty() => {
            bucket_name(bucket).map_err(|_| BatchError::BucketArn(arn.to_owned()))
        }
        _ => Err(BatchError::BucketArn(arn.to_owned())),
    }
}

fn arguments(given: Option<&Value>) -> Result<Arguments, BatchError> {
    let mut arguments = Arguments::default();
    let map = match given {
        None | Some(Value::Null) => return Ok(arguments),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(BatchError::ArgumentsShape(other.to_string())),
    };
    for (name, value) in map {
        match name.as_str() {
            "force" => {
                let read = match value {
                    Value::Bool(b) => Some(*b),
                    Value::String(s) => resize_core::adapter::parse_bool(s),
                    _ => None,
                };
                arguments.force = match read {
                    Some(force) => force,
                    None => return Err(BatchError::Force(value.to_string())),
                }
            }
            other => return Err(BatchError::UnknownArgument(other.to_owned())),
        }
    }
    Ok(arguments)
}

/// The response S3 expects: the invocation echoed, one result per task.
/// A task left out (one without a task id) counts as a permanent failure:
/// nothing names it, so nothing could ever answer it.
pub fn response(job: &BatchJob, answers: &[TaskAnswer]) -> Value {
    json!({
        "invocationSchemaVersion": job.schema,
        "treatMissingKeysAs": ResultCode::PermanentFailure,
        "invocationId": job.invocation_id,
        "results": answers
            .iter()
            .map(|a| json!({ "taskId": a.task_id, "resultCode": a.code, "resultString": a.text }))
            .collect::<Vec<_>>(),
    })
}

/// `text` cut to at most `max` bytes on a character boundary, marked with
/// an ellipsis when cut.
fn shortened(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v1(tasks: Value) -> Value {
        json!({"invocationSchemaVersion": "1.0", "invocationId": "inv-1",
               "job": {"id": "job-1"}, "tasks": tasks})
    }

    fn v2(arguments: Value, tasks: Value) -> Value {
        json!({"invocationSchemaVersion": "2.0", "invocationId": "inv-2",
               "job": {"id": "job-2", "userArguments": arguments}, "tasks": tasks})
    }

    /// One task through the parser: its target, or an error containing `expect_err`.
    #[track_caller]
    fn check(event: Value, expect: Result<Target, &str>) {
        let job = parse(&event);
        assert_eq!(job.tasks.len(), 1, "{job:?}");
        match (&job.tasks[0].target, expect) {
            (got, Ok(want)) => assert_eq!(got, &Ok(want)),
            (Err(got), Err(want)) => assert!(got.to_string().contains(want), "{got:?} does not say {want:?}"),
            (got, Err(want)) => panic!("expected an error saying {want:?}, got {got:?}"),
        }
    }

    #[test]
    fn tasks_of_both_schemas() {
        let arn = |arn: &str, key: &str| v1(json!([{"taskId": "t", "s3Key": key, "s3BucketArn": arn}]));
        let named = |bucket: &str, key: &str| {
            v2(
                Value::Null,
                json!([{"taskId": "t", "s3Key": key, "s3Bucket": bucket}]),
            )
        };
        let t = |key: &str| Target {
            bucket: "photos".to_owned(),
            key: key.to_owned(),
            version_id: None,
        };
        check(
            arn("arn:aws:s3:::photos", "original/a.jpg"),
            Ok(t("original/a.jpg")),
        );
        check(
            arn("arn:aws:s3:us-east-1:0123456788:photos", "a.jpg"),
            Ok(t("a.jpg")),
        );
        check(arn("arn:aws-cn:s3:::photos", "a.jpg"), Ok(t("a.jpg")));
        check(
            named("photos", "original/trips/a+b%2Bc.jpg"),
            Ok(t("original/trips/a b+c.jpg")),
        );
        check(named("photos", "na%C3%AFve/%E6%97%A5.png"), Ok(t("naïve/日.png")));
        check(named("photos", "100%25.jpg"), Ok(t("100%.jpg")));
        check(named("photos", "bad%FF.jpg"), Err("not valid URL-encoded UTF-8"));
        check(named("photos", ""), Err("names no key"));
        check(named("", "a.jpg"), Err("names no bucket"));
        check(named("a/b", "a.jpg"), Err("not a bucket name"));
        check(arn("photos", "a.jpg"), Err("not the ARN of a bucket"));
        check(arn("arn:aws:s3:::", "a.jpg"), Err("not the ARN of a bucket"));
        check(
            arn("arn:aws:sqs:us-east-1:1:q", "a.jpg"),
            Err("not the ARN of a bucket"),
        );
        check(
            arn("arn:aws:s3:::photos/original", "a.jpg"),
            Err("not the ARN of a bucket"),
        );
        // A version, or none (null and "" both mean none).
        check(
            v1(
                json!([{"taskId": "t", "s3Key": "a.jpg", "s3VersionId": "v7", "s3BucketArn": "arn:aws:s3:::photos"}]),
            ),
            Ok(Target {
                version_id: Some("v7".to_owned()),
                ..t("a.jpg")
            }),
        );
        for none in [Value::Null, json!("")] {
            check(
                v2(
                    Value::Null,
                    json!([{"taskId": "t", "s3Key": "a.jpg", "s3VersionId": none, "s3Bucket": "photos"}]),
                ),
                Ok(t("a.jpg")),
            );
        }
        // An unknown schema fails every task with the reason.
        check(
            json!({"invocationSchemaVersion": "3.0", "invocationId": "i", "job": {},
                   "tasks": [{"taskId": "t", "s3Key": "a.jpg", "s3Bucket": "photos"}]}),
            Err("`3.0` is not supported (this function reads 1.0 and 2.0)"),
        );
    }

    #[test]
    fn user_arguments() {
        #[track_caller]
        fn check_args(arguments: Value, expect: Result<bool, &str>) {
            let got = parse(&v2(arguments, json!([]))).arguments;
            match (got, expect) {
                (Ok(a), Ok(force)) => assert_eq!(a.force, force),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e:?} does not say {want:?}"),
                (got, want) => panic!("{got:?}, expected {want:?}"),
            }
        }
        check_args(Value::Null, Ok(false));
        check_args(json!({}), Ok(false));
        check_args(json!({"force": "true"}), Ok(true));
        check_args(json!({"force": " TRUE "}), Ok(true));
        check_args(json!({"force": "false"}), Ok(false));
        check_args(json!({"force": true}), Ok(true));
        // Every boolean setting reads the same words (resize_core::adapter::parse_bool).
        check_args(json!({"force": "yes"}), Ok(true));
        check_args(json!({"force": "off"}), Ok(false));
        check_args(
            json!({"force": "maybe"}),
            Err("`force` must be \"true\" or \"false\", not \"maybe\""),
        );
        check_args(json!({"force": 1}), Err("must be \"true\" or \"false\""));
        check_args(
            json!({"forse": "true"}),
            Err("unknown argument `forse` (this function takes: force)"),
        );
        check_args(json!(["force"]), Err("must be an object of strings"));
        // Schema 1.0 carries none.
        assert_eq!(parse(&v1(json!([]))).arguments, Ok(Arguments::default()));
    }

    #[test]
    fn the_response_echoes_the_invocation_and_answers_each_task() {
        let event = v2(
            json!({"force": "true"}),
            json!([
                {"taskId": "t1", "s3Key": "a.jpg", "s3Bucket": "b"},
                {"s3Key": "no-id.jpg", "s3Bucket": "b"},
                "not an object",
                {"taskId": "t2", "s3Key": "b.jpg", "s3Bucket": "b"}
            ]),
        );
        let job = parse(&event);
        assert_eq!(job.unanswerable, 2);
        assert_eq!(job.job_id.as_deref(), Some("job-2"));
        let ids: Vec<&str> = job.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["t1", "t2"]);
        let answers = [
            TaskAnswer::new("t1", ResultCode::Succeeded, "wrote 8 variants"),
            TaskAnswer::new("t2", ResultCode::TemporaryFailure, "s3 get failed: SlowDown"),
        ];
        assert_eq!(
            response(&job, &answers),
            json!({
                "invocationSchemaVersion": "2.0",
                "treatMissingKeysAs": "PermanentFailure",
                "invocationId": "inv-2",
                "results": [
                    {"taskId": "t1", "resultCode": "Succeeded", "resultString": "wrote 8 variants"},
                    {"taskId": "t2", "resultCode": "TemporaryFailure", "resultString": "s3 get failed: SlowDown"}
                ]
            })
        );
    }

    #[test]
    fn long_result_strings_are_cut_on_a_character_boundary() {
        let long = "é".repeat(RESULT_STRING_MAX);
        let text = TaskAnswer::new("t", ResultCode::PermanentFailure, &long).text;
        assert!(
            text.len() <= RESULT_STRING_MAX && text.ends_with('…'),
            "{}",
            text.len()
        );
        assert!(long.starts_with(text.trim_end_matches('…')));
        assert_eq!(TaskAnswer::new("t", ResultCode::Succeeded, "short").text, "short");
    }

    #[test]
    fn only_batch_payloads_are_taken_for_batch() {
        assert!(is_batch(&v1(json!([]))));
        assert!(!is_batch(&json!({"Records": []})));
        assert!(!is_batch(&json!({"invocationSchemaVersion": "1.0"})));
    }
}
