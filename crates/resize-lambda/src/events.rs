//! Event documents in, tasks out: S3 notifications (direct, inside SQS
//! messages, inside SNS notifications), EventBridge "Object Created" /
//! "Object Deleted" events, S3 Batch Operations jobs ([`crate::batch`]) and the
//! failure records of an on-failure destination, run as their original event so a
//! failure queue can be replayed. Parsing is pure and never fails: shapes we do
//! not know are reported as ignored, so they are logged, not retried.

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;

use crate::batch::{self, BatchJob};
pub use crate::key::decode_key;

/// Why an invocation, a record or a message yielded no task. Ignored
/// records are logged and answered, never retried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ignored {
    /// S3's test notification, sent when a notification is configured.
    #[error("s3:TestEvent")]
    TestEvent,
    /// A payload of no shape this function reads.
    #[error("unknown event shape")]
    UnknownShape,
    /// An SQS event that does not parse.
    #[error("malformed sqs event: {0}")]
    MalformedSqs(String),
    /// An SQS message whose body is not JSON.
    #[error("message body is not JSON")]
    BodyNotJson,
    /// An SQS event inside an SQS message.
    #[error("nested sqs event")]
    SqsInSqs,
    /// A Batch Operations invocation inside an SQS message.
    #[error("batch operations event inside sqs")]
    BatchInSqs,
    /// An SNS message that is not JSON.
    #[error("sns message is not JSON")]
    SnsNotJson,
    /// An SQS event inside an SNS message.
    #[error("sqs event inside sns")]
    SqsInSns,
    /// A Batch Operations invocation inside an SNS message.
    #[error("batch operations event inside sns")]
    BatchInSns,
    /// An S3 record without its bucket or key.
    #[error("record without bucket or key (event `{0}`)")]
    NoBucketOrKey(String),
    /// A key that does not decode.
    #[error("key `{0}` is not valid URL-encoded UTF-8")]
    Key(String),
    /// An S3 event other than a creation or a removal.
    #[error("event `{0}` is not handled")]
    NotHandled(String),
    /// An EventBridge event without its bucket or key.
    #[error("eventbridge `{0}` without bucket or key")]
    EventBridgeNoBucketOrKey(String),
    /// An EventBridge event other than a creation or a deletion.
    #[error("eventbridge `{0}` is not handled")]
    EventBridgeNotHandled(String),
    /// A failure record whose original event is one no asynchronous
    /// invocation sends (SQS, Batch Operations, another failure record).
    #[error("failure record of a {0} invocation, which is not replayed")]
    FailureOf(&'static str),
}

/// What to do for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// An object was created (Put, Post, Copy, CompleteMultipartUpload).
    Created {
        /// Bucket name.
        bucket: String,
        /// The key, URL-decoded.
        key: String,
        /// The ETag from the event, without quotes, when present.
        etag: Option<String>,
    },
    /// An object was removed.
    Removed {
        /// Bucket name.
        bucket: String,
        /// The key, URL-decoded.
        key: String,
    },
    /// An object named by an S3 Batch Operations manifest.
    Listed {
        /// Bucket name.
        bucket: String,
        /// The key, URL-decoded.
        key: String,
        /// The version the manifest names, if any.
        version_id: Option<String>,
        /// Rebuild current variants too (`userArguments` `force`).
        force: bool,
    },
}

/// One SQS message and the tasks its body holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsItem {
    /// The message id, reported back when the message fails.
    pub message_id: String,
    /// The tasks; empty for a test event or an unknown body.
    pub tasks: Vec<Task>,
    /// Why the body yielded no tasks, if it did not.
    pub ignored: Option<Ignored>,
}

/// A parsed invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// S3, SNS or EventBridge: the invocation fails when a task fails
    /// transiently, so Lambda retries it.
    Direct {
        /// The tasks, in event order.
        tasks: Vec<Task>,
        /// Records that yielded no task, and why.
        ignored: Vec<Ignored>,
    },
    /// SQS: failed messages are reported in a batch response.
    Sqs(Vec<SqsItem>),
    /// S3 Batch Operations: one result per task, and the invocation
    /// itself always succeeds.
    Batch(BatchJob),
    /// Nothing to do (an `s3:TestEvent`, an unknown shape).
    Ignored(Ignored),
}

/// Parses an invocation payload.
pub fn parse(payload: &Value) -> Invocation {
    if batch::is_batch(payload) {
        return Invocation::Batch(batch::parse(payload));
    }
    if payload.get("Records").is_some_and(|r| {
        r.as_array()
            .and_then(|a| a.first())
            .and_then(|r| r.get("eventSource"))
            .and_then(Value::as_str)
            == Some("aws:sqs")
    }) {
        return sqs(payload);
    }
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        return records_of(records);
    }
    // SNS delivered to SQS without raw message delivery: the body is the
    // SNS envelope, and its Message is the S3 event.
    if payload.get("Type").and_then(Value::as_str) == Some("Notification") {
        if let Some(message) = payload.get("Message").and_then(Value::as_str) {
            return match serde_json::from_str::<Value>(message) {
                Ok(inner) => parse(&inner),
                Err(_) => Invocation::Ignored(Ignored::SnsNotJson),
            };
        }
    }
    if payload.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Invocation::Ignored(Ignored::TestEvent);
    }
    if let Some(original) = failure_record(payload) {
        return replay(original);
    }
    if payload.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return match eventbridge(payload) {
            Ok(task) => Invocation::Direct {
                tasks: vec![task],
                ignored: Vec::new(),
            },
            Err(why) => Invocation::Ignored(why),
        };
    }
    Invocation::Ignored(Ignored::UnknownShape)
}

/// An SQS batch: each message's body is parsed as an event of its own
/// (an S3 event, or SNS's envelope of one).
fn sqs(payload: &Value) -> Invocation {
    match serde_json::from_value::<SqsEvent>(payload.clone()) {
        Ok(event) => Invocation::Sqs(
            event
                .records
                .into_iter()
                .map(|m| {
                    let body = m.body.as_deref().unwrap_or("");
                    let (tasks, ignored) = match serde_json::from_str::<Value>(body) {
                        Ok(inner) => match parse(&inner) {
                            Invocation::Direct { tasks, ignored } => (tasks, ignored.first().cloned()),
                            Invocation::Ignored(why) => (Vec::new(), Some(why)),
                            Invocation::Sqs(_) => (Vec::new(), Some(Ignored::SqsInSqs)),
                            Invocation::Batch(_) => (Vec::new(), Some(Ignored::BatchInSqs)),
                        },
                        Err(_) => (Vec::new(), Some(Ignored::BodyNotJson)),
                    };
                    SqsItem {
                        message_id: m.message_id.unwrap_or_default(),
                        tasks,
                        ignored,
                    }
                })
                .collect(),
        ),
        Err(e) => Invocation::Ignored(Ignored::MalformedSqs(e.to_string())),
    }
}

/// The `Records` of an S3 event, or of an SNS notification whose messages
/// are S3 events.
fn records_of(records: &[Value]) -> Invocation {
    let mut tasks = Vec::new();
    let mut ignored = Vec::new();
    for record in records {
        if let Some(message) = record.pointer("/Sns/Message").and_then(Value::as_str) {
            match serde_json::from_str::<Value>(message).map(|v| parse(&v)) {
                Ok(Invocation::Direct { tasks: t, ignored: i }) => {
                    tasks.extend(t);
                    ignored.extend(i);
                }
                Ok(Invocation::Ignored(why)) => ignored.push(why),
                Ok(Invocation::Sqs(_)) => ignored.push(Ignored::SqsInSns),
                Ok(Invocation::Batch(_)) => ignored.push(Ignored::BatchInSns),
                Err(_) => ignored.push(Ignored::SnsNotJson),
            }
            continue;
        }
        match s3_record(record) {
            Ok(task) => tasks.push(task),
            Err(why) => ignored.push(why),
        }
    }
    Invocation::Direct { tasks, ignored }
}

/// The original event of a Lambda failure record: what an asynchronous
/// invocation's on-failure destination receives once Lambda's retries are
/// spent (`requestContext`, `requestPayload`, `responseContext`, …). The
/// failure queue holds these, so replaying it runs them again.
fn failure_record(payload: &Value) -> Option<&Value> {
    let context = payload.get("requestContext")?;
    context.get("functionArn")?;
    payload.get("requestPayload")
}

/// A failure record's original event, run as it was first sent: an S3
/// notification, SNS's envelope of one or an EventBridge event.
fn replay(original: &Value) -> Invocation {
    // A record of a record would replay an event Lambda never sends twice
    // wrapped; an SQS or Batch Operations invocation is synchronous and
    // has no failure records of this shape.
    if failure_record(original).is_some() {
        return Invocation::Ignored(Ignored::FailureOf("failure-record"));
    }
    match parse(original) {
        Invocation::Sqs(_) => Invocation::Ignored(Ignored::FailureOf("sqs")),
        Invocation::Batch(_) => Invocation::Ignored(Ignored::FailureOf("batch operations")),
        other => other,
    }
}

fn s3_record(record: &Value) -> Result<Task, Ignored> {
    let name = record.get("eventName").and_then(Value::as_str).unwrap_or("");
    let bucket = record.pointer("/s3/bucket/name").and_then(Value::as_str);
    let key = record.pointer("/s3/object/key").and_then(Value::as_str);
    let (Some(bucket), Some(key)) = (bucket, key) else {
        return Err(Ignored::NoBucketOrKey(name.to_owned()));
    };
    // Notification keys are form-encoded: `+` is a space, `%XX` a UTF-8 byte.
    let key = decode_key(key).ok_or_else(|| Ignored::Key(key.to_owned()))?;
    let bucket = bucket.to_owned();
    let event = name.strip_prefix("s3:").unwrap_or(name);
    if event.starts_with("ObjectCreated:") {
        let etag = record
            .pointer("/s3/object/eTag")
            .and_then(Value::as_str)
            .map(|e| e.trim_matches('"').to_owned());
        Ok(Task::Created { bucket, key, etag })
    } else if event.starts_with("ObjectRemoved:") {
        Ok(Task::Removed { bucket, key })
    } else {
        Err(Ignored::NotHandled(name.to_owned()))
    }
}

fn eventbridge(event: &Value) -> Result<Task, Ignored> {
    let kind = event.get("detail-type").and_then(Value::as_str).unwrap_or("");
    let bucket = event.pointer("/detail/bucket/name").and_then(Value::as_str);
    // EventBridge carries keys as they are, not URL-encoded.
    let key = event.pointer("/detail/object/key").and_then(Value::as_str);
    let (Some(bucket), Some(key)) = (bucket, key) else {
        return Err(Ignored::EventBridgeNoBucketOrKey(kind.to_owned()));
    };
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    match kind {
        "Object Created" => Ok(Task::Created {
            bucket,
            key,
            etag: event
                .pointer("/detail/object/etag")
                .and_then(Value::as_str)
                .map(|e| e.trim_matches('"').to_owned()),
        }),
        "Object Deleted" => Ok(Task::Removed { bucket, key }),
        _ => Err(Ignored::EventBridgeNotHandled(kind.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn check_key(encoded: &str, expect: Option<&str>) {
        assert_eq!(decode_key(encoded).as_deref(), expect);
    }

    fn s3_event(key: &str) -> String {
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "eTag": "\"e1\""}}}]})
        .to_string()
    }

    #[test]
    fn sns_envelopes_inside_sqs_are_unwrapped() {
        let envelope = json!({"Type": "Notification", "Message": s3_event("original/a+b.jpg")}).to_string();
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": envelope}]});
        let Invocation::Sqs(items) = parse(&sqs) else {
            panic!("not sqs")
        };
        assert_eq!(
            items[0].tasks,
            [Task::Created {
                bucket: "b".into(),
                key: "original/a b.jpg".into(),
                etag: Some("e1".into())
            }]
        );
    }

    /// A Lambda on-failure destination record, as the failure queue holds
    /// it, around `original`.
    fn failure_record(original: Value) -> Value {
        json!({
            "version": "1.0",
            "timestamp": "2026-12-08T01:02:03.456Z",
            "requestContext": {
                "requestId": "c3f1",
                "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:resize:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": original,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "1 record(s) failed transiently and will be retried"}
        })
    }

    /// Failure records run as their original event, directly and inside
    /// the SQS messages of a failure queue; what an asynchronous invocation
    /// never sends is ignored with its reason.
    #[test]
    fn failure_records_replay_their_original_event() {
        let created = Task::Created {
            bucket: "b".into(),
            key: "original/a b.jpg".into(),
            etag: Some("e1".into()),
        };
        let s3: Value = serde_json::from_str(&s3_event("original/a+b.jpg")).unwrap();
        let direct = |tasks: Vec<Task>| Invocation::Direct {
            tasks,
            ignored: Vec::new(),
        };
        let sqs_of = |body: Value| json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": body.to_string()}]});
        let eventbridge = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "original/a b.jpg", "etag": "e1"}}});
        let sns = json!({"Records": [{"Sns": {"Message": s3_event("original/a+b.jpg")}}]});
        let check = |payload: Value, want: Invocation| assert_eq!(parse(&payload), want, "{payload}");
        check(failure_record(s3.clone()), direct(vec![created.clone()]));
        check(failure_record(eventbridge), direct(vec![created.clone()]));
        check(failure_record(sns), direct(vec![created.clone()]));
        check(
            sqs_of(failure_record(s3.clone())),
            Invocation::Sqs(vec![SqsItem {
                message_id: "m1".into(),
                tasks: vec![created],
                ignored: None,
            }]),
        );
        check(
            failure_record(sqs_of(s3.clone())),
            Invocation::Ignored(Ignored::FailureOf("sqs")),
        );
        check(
            failure_record(failure_record(s3.clone())),
            Invocation::Ignored(Ignored::FailureOf("failure-record")),
        );
        check(
            failure_record(json!({"unknown": true})),
            Invocation::Ignored(Ignored::UnknownShape),
        );
        // Without its request context, a `requestPayload` is no failure record.
        check(
            json!({"requestPayload": s3}),
            Invocation::Ignored(Ignored::UnknownShape),
        );
    }

    #[test]
    fn keys_are_decoded_like_s3_encodes_them() {
        check_key("a+b.jpg", Some("a b.jpg"));
        check_key("a%2Bb.jpg", Some("a+b.jpg"));
        check_key("trips/%28copy%29+1.jpg", Some("trips/(copy) 1.jpg"));
        check_key("na%C3%AFve/%E6%97%A5%E6%9C%AC.png", Some("naïve/日本.png"));
        check_key("100%25.jpg", Some("100%.jpg"));
        check_key("bad%FF.jpg", None);
        check_key("plain/key.jpg", Some("plain/key.jpg"));
    }
}
