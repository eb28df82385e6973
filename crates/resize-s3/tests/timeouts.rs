//! Timeouts against servers that misbehave on purpose, hand-written on
//! loopback (moto always answers): one that accepts connections and never
//! answers, one that sends a body slowly but steadily, one that stops in
//! the middle of a body. The first must fail within three answer timeouts,
//! the second must finish however long it takes, the third must fail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use resize_core::{Storage, StorageError};
use resize_s3::{BucketError, ClientOptions, S3Store};

/// The answer timeout of these tests: short, so they take seconds, and
/// long enough for a loaded CI machine to answer a request on loopback.
const ANSWER: Duration = Duration::from_secs(2);

/// What the server does with each request it reads.
#[derive(Clone, Copy)]
enum Server {
    /// Reads the request, then holds the connection without a byte.
    Silent,
    /// Answers with a body of `len` bytes, `chunks` pieces `gap` apart.
    Dribble {
        len: usize,
        chunks: usize,
        gap: Duration,
    },
    /// Promises a body of `promised` bytes, sends `sent`, and stops.
    Stall { promised: usize, sent: usize },
}

/// Starts `server` on a loopback port; connections are served until the
/// test process ends.
fn start(server: Server) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            thread::spawn(move || serve(conn, server));
        }
    });
    port
}

fn serve(mut conn: TcpStream, server: Server) {
    // The request's head (the SDK's GETs and HEADs have no body).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    match server {
        Server::Silent => thread::sleep(Duration::from_secs(120)),
        Server::Stall { promised, sent } => {
            let reply =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {promised}\r\nContent-Type: image/jpeg\r\n\r\n");
            let _ = conn.write_all(reply.as_bytes());
            let _ = conn.write_all(&vec![b'x'; sent]);
            thread::sleep(Duration::from_secs(120));
        }
        Server::Dribble { len, chunks, gap } => {
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: image/jpeg\r\nETag: \"0123456789abcdef0123456789abcdef\"\r\n\r\n"
            );
            if conn.write_all(reply.as_bytes()).is_err() {
                return;
            }
            let piece = len / chunks;
            for i in 0..chunks {
                thread::sleep(gap);
                let n = if i + 1 == chunks { len - piece * i } else { piece };
                if conn.write_all(&vec![b'x'; n]).is_err() {
                    return;
                }
            }
            // Keep the connection open, as a server would between requests.
            thread::sleep(Duration::from_secs(120));
        }
    }
}

/// A client and a runtime for `port`, as the CLI makes them.
fn connect(port: u16) -> (tokio::runtime::Runtime, resize_s3::Client) {
    // The same values for every test of this binary, set once before any
    // client reads them; each server's endpoint goes into its own client.
    static ENV: std::sync::Once = std::sync::Once::new();
    ENV.call_once(|| {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            // Inside `call_once`, before this binary's first client, so no
            // other thread reads the environment meanwhile.
            std::env::set_var(k, v);
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let options = ClientOptions {
        force_path_style: true,
        attempt_timeout: Duration::from_secs(30),
        timeout: Duration::from_secs(120),
        answer_timeout: Some(ANSWER),
    };
    let client = rt.block_on(resize_s3::client(options));
    let config = client
        .config()
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    (rt, resize_s3::Client::from_conf(config))
}

#[test]
fn a_server_that_never_answers_fails_the_bucket_check_in_three_answer_timeouts() {
    let (rt, client) = connect(start(Server::Silent));
    let started = Instant::now();
    let err = rt
        .block_on(resize_s3::check_bucket(&client, "bucket", None))
        .expect_err("no answer is an error");
    let took = started.elapsed();
    assert!(matches!(err, BucketError::Unreachable { .. }), "{err}");
    // Three attempts and the SDK's pauses between them, never the 30 s
    // attempt timeout.
    assert!(took < ANSWER * 3 + Duration::from_secs(2), "took {took:?}");
    assert!(took >= ANSWER * 3, "took {took:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("cannot reach bucket `bucket` (gave up after "),
        "{text}"
    );
}

#[test]
fn a_slow_honest_body_finishes_and_a_stalled_one_fails() {
    // Six pieces 1.5 s apart: 9 s in all, four and a half answer
    // timeouts, but never one without a byte.
    let len = 200_000;
    let (rt, client) = connect(start(Server::Dribble {
        len,
        chunks: 6,
        gap: Duration::from_millis(1500),
    }));
    let store = S3Store::new(client, "bucket", rt.handle().clone());
    let started = Instant::now();
    let fetched = store.get("slow.jpg", 1 << 20).expect("a slow body is read whole");
    assert_eq!(fetched.bytes.len(), len);
    assert!(
        started.elapsed() > ANSWER * 4,
        "the body was not slow: {:?}",
        started.elapsed()
    );

    // A body that stops: the server promises more than it sends.
    let port = start(Server::Stall {
        promised: 1000,
        sent: 10,
    });
    let (rt, client) = connect(port);
    let store = S3Store::new(client, "bucket", rt.handle().clone());
    let started = Instant::now();
    let err = store
        .get("stalled.jpg", 1 << 20)
        .expect_err("a stalled body is an error");
    assert!(matches!(err, StorageError::Transient { .. }), "{err}");
    assert!(err.to_string().contains("no data for"), "{err}");
    // Three attempts, each stopped after an answer timeout without data.
    assert!(
        started.elapsed() < ANSWER * 3 + Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
