//! S3 for the CLI: one tokio runtime for every S3 call of the run, a
//! client per bucket (in its region), and the checks made before any
//! work: credentials, each bucket's existence and access, and the
//! recursion guard for a destination in a source bucket.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use resize_core::Recipe;
use resize_s3::{Client, ClientOptions, RequestLimit, S3Store};

use crate::location::S3Url;

/// What variants written to S3 are served with: the Lambda's default (the
/// name of a variant changes with its source, so it never goes stale).
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// How long one S3 call keeps trying while S3 throttles it: a backfill is
/// in no hurry, and a throttled prefix clears within seconds to minutes.
const PATIENCE: Duration = Duration::from_secs(300);

pub struct Cloud {
    runtime: tokio::runtime::Runtime,
    /// A client per bucket, each for the bucket's own region.
    clients: HashMap<String, Client>,
    /// The client of the default region.
    default: Client,
    /// Shared by every store of the run.
    requests: RequestLimit,
}

/// How long a request without a body waits for S3's answer, and a GET's
/// body for its next byte, before it is tried again: three attempts give
/// up on a server that accepts and never answers within about 30 s.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// A PUT's attempt timeout: its upload's time grows with its size.
const PUT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// S3 requests in flight at once, all images together.
const REQUESTS: usize = 64;

impl Cloud {
    /// Connects and checks, before any work: credentials; each input's
    /// bucket exists and may be listed under its prefix; the output's
    /// bucket exists. Any failure is the user's to fix (exit 2).
    pub fn connect(inputs: &[&S3Url], out: Option<&S3Url>) -> anyhow::Result<Cloud> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            // A few threads drive every request; the work is waiting.
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the S3 client's runtime")?;
        let options = ClientOptions {
            force_path_style: flag("S3_FORCE_PATH_STYLE")?,
            attempt_timeout: PUT_ATTEMPT_TIMEOUT,
            timeout: Duration::from_secs(120),
            answer_timeout: Some(ANSWER_TIMEOUT),
        };
        let (clients, default) = runtime.block_on(async {
            let client = resize_s3::client_with_credentials(options).await?;
            let mut clients: HashMap<String, Client> = HashMap::new();
            let checks = inputs
                .iter()
                .map(|u| (*u, Some(u.prefix.as_str())))
                .chain(out.map(|u| (u, None)));
            for (url, list) in checks {
                // One HEAD per bucket; a listing per input prefix.
                let known = clients.get(&url.bucket).cloned();
                let checked =
                    resize_s3::check_bucket(known.as_ref().unwrap_or(&client), &url.bucket, list).await?;
                clients.insert(url.bucket.clone(), checked);
            }
            Ok::<_, resize_s3::BucketError>((clients, client))
        })?;
        Ok(Cloud {
            runtime,
            clients,
            default,
            requests: RequestLimit::new(REQUESTS),
        })
    }

    /// The store of `url`'s bucket, rooted at the bucket (sources keep
    /// their whole keys, as the Lambda sees them).
    pub fn bucket(&self, url: &S3Url) -> S3Store {
        // `connect` made a client for every bucket it was given.
        let client = self.clients.get(&url.bucket).unwrap_or(&self.default).clone();
        S3Store::new(client, &url.bucket, self.runtime.handle().clone())
            .with_put_timeout(PUT_ATTEMPT_TIMEOUT)
            .with_patience(PATIENCE)
            .with_request_limit(&self.requests)
    }

    /// The store variants go to: `url`'s bucket under its prefix, with the
    /// Lambda's Cache-Control.
    pub fn destination(&self, url: &S3Url) -> S3Store {
        self.bucket(url)
            .with_prefix(&url.prefix)
            .with_cache_control(CACHE_CONTROL)
    }
}

/// Refuses a destination in a source's bucket where a run would take its
/// outputs for sources, and two inputs of one bucket that overlap (their
/// common keys would be sources twice).
pub fn refuse_loops(recipe: &Recipe, inputs: &[&S3Url], out: Option<&S3Url>) -> anyhow::Result<()> {
    for (i, a) in inputs.iter().enumerate() {
        for b in &inputs[i + 1..] {
            if a.bucket == b.bucket && (a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix)) {
                bail!("inputs `{a}` and `{b}` overlap: give each key once");
            }
        }
        if let Some(out) = out.filter(|o| o.bucket == a.bucket) {
            recipe
                .refuse_destination_loop(&a.prefix, &out.prefix)
                .with_context(|| format!("output `{out}` would feed input `{a}`"))?;
        }
    }
    Ok(())
}

/// A boolean environment variable, read as every boolean setting is
/// (`resize_core::adapter::parse_bool`); unset or empty is false.
fn flag(name: &str) -> anyhow::Result<bool> {
    match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
        None => Ok(false),
        Some(v) => match resize_core::adapter::parse_bool(&v) {
            Some(b) => Ok(b),
            None => bail!("invalid {name} value `{}`: expected true or false", v.trim()),
        },
    }
}
