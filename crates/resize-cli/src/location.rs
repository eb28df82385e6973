//! Where sources come from and variants go: a local path or an S3 URL,
//! `s3://BUCKET[/PREFIX]`, parsed once so the rest of the run never sees
//! a string it has not checked.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;

/// A parsed INPUT or `--out`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A file or directory.
    Local(PathBuf),
    /// Keys of a bucket under a prefix.
    S3(S3Url),
}

/// `s3://BUCKET/PREFIX`: the keys of `bucket` under `prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Empty (the whole bucket) or a folder: it ends with `/`, so that
    /// `s3://b/original` and `s3://b/original/` both mean the keys under
    /// `original/`, never `original-old/...`.
    pub prefix: String,
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Why an argument is not a location.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("`{0}` names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX")]
    NoBucket(String),
    #[error("`{url}`: `{bucket}` is not a valid S3 bucket name: {why}")]
    BadBucket {
        url: String,
        bucket: String,
        why: &'static str,
    },
    #[error("`{url}`: the prefix {why}")]
    BadPrefix { url: String, why: &'static str },
    #[error("`{0}`: only local paths and s3:// URLs are supported")]
    OtherScheme(String),
}

impl Location {
    /// The bucket and prefix, for an S3 location.
    pub fn s3(&self) -> Option<&S3Url> {
        match self {
            Location::S3(url) => Some(url),
            Location::Local(_) => None,
        }
    }

    /// The path, for a local location.
    pub fn local(&self) -> Option<&PathBuf> {
        match self {
            Location::Local(path) => Some(path),
            Location::S3(_) => None,
        }
    }

    /// Parses an argument: `s3://` (any case) is S3, another `scheme://`
    /// is refused, anything else is a local path (non-UTF-8 paths too).
    pub fn parse(arg: &OsStr) -> Result<Location, LocationError> {
        let Some(text) = arg.to_str() else {
            return Ok(Location::Local(PathBuf::from(arg)));
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(Location::Local(PathBuf::from(arg)));
        };
        // `./a://b` or `photos ://x` is a path; a URL's scheme is a word.
        let is_scheme = !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !is_scheme {
            return Ok(Location::Local(PathBuf::from(arg)));
        }
        if !scheme.eq_ignore_ascii_case("s3") {
            return Err(LocationError::OtherScheme(text.to_owned()));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(LocationError::NoBucket(text.to_owned()));
        }
        if let Err(why) = check_bucket_name(bucket) {
            return Err(LocationError::BadBucket {
                url: text.to_owned(),
                bucket: bucket.to_owned(),
                why,
            });
        }
        Ok(Location::S3(S3Url {
            bucket: bucket.to_owned(),
            prefix: folder(prefix).map_err(|why| LocationError::BadPrefix {
                url: text.to_owned(),
                why,
            })?,
        }))
    }
}

/// The prefix as a folder: empty, or its segments joined and ending with
/// `/`. Keys with empty, `.` or `..` segments are never sources or
/// outputs (the core refuses them), so a prefix with one names nothing.
fn folder(prefix: &str) -> Result<String, &'static str> {
    if prefix.starts_with('/') {
        return Err("has an empty path segment (`//`)");
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed.split('/') {
        match segment {
            "" => return Err("has an empty path segment (`//`)"),
            "." | ".." => return Err("has a `.` or `..` path segment"),
            s if s.contains('\0') => return Err("contains NUL"),
            _ => {}
        }
    }
    if trimmed.len() >= 1024 {
        return Err("is longer than an S3 key can be (1024 bytes)");
    }
    Ok(format!("{trimmed}/"))
}

/// S3's rules for general purpose bucket names.
fn check_bucket_name(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("it must be 3 to 63 characters long");
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("it must be lower-case");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err("it may hold only lower-case letters, digits, `.` and `-`");
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge(name.chars().next()) || !edge(name.chars().last()) {
        return Err("it must begin and end with a letter or a digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err("it may not have `..`, `.-` or `-.`");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err("it may not look like an IP address");
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|s| name.ends_with(s))
    {
        return Err("it uses a prefix or suffix S3 reserves");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(arg: &str, expect: Result<Location, &str>) {
        let got = Location::parse(OsStr::new(arg)).map_err(|e| e.to_string());
        assert_eq!(got, expect.map_err(str::to_owned), "{arg}");
    }

    fn s3(bucket: &str, prefix: &str) -> Result<Location, &'static str> {
        Ok(Location::S3(S3Url {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }))
    }

    fn local(path: &str) -> Result<Location, &'static str> {
        Ok(Location::Local(PathBuf::from(path)))
    }

    #[test]
    fn locations() {
        check("s3://photos", s3("photos", ""));
        check("s3://photos/", s3("photos", ""));
        check("s3://photos/original", s3("photos", "original/"));
        check("s3://photos/original/", s3("photos", "original/"));
        check("S3://photos/a b/ü+%/", s3("photos", "a b/ü+%/"));
        check("s3://my.bucket-1/x/y", s3("my.bucket-1", "x/y/"));
        check("photos/", local("photos/"));
        check("./s3:/x", local("./s3:/x"));
        check("a b://x", local("a b://x"));
        check("/tmp/x://y", local("/tmp/x://y"));
        check(
            "s3://",
            Err("`s3://` names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX"),
        );
        check(
            "s3:///key",
            Err("`s3:///key` names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX"),
        );
        check(
            "gs://b/x",
            Err("`gs://b/x`: only local paths and s3:// URLs are supported"),
        );
        check(
            "https://b.s3.amazonaws.com/x",
            Err("`https://b.s3.amazonaws.com/x`: only local paths and s3:// URLs are supported"),
        );
        let bad = |url: &str, bucket: &str, why: &str| {
            format!("`{url}`: `{bucket}` is not a valid S3 bucket name: {why}")
        };
        for (url, bucket, why) in [
            ("s3://ab", "ab", "it must be 3 to 63 characters long"),
            ("s3://Photos/x", "Photos", "it must be lower-case"),
            (
                "s3://my_bucket",
                "my_bucket",
                "it may hold only lower-case letters, digits, `.` and `-`",
            ),
            (
                "s3://-photos",
                "-photos",
                "it must begin and end with a letter or a digit",
            ),
            (
                "s3://photos.",
                "photos.",
                "it must begin and end with a letter or a digit",
            ),
            ("s3://a..b", "a..b", "it may not have `..`, `.-` or `-.`"),
            (
                "s3://192.168.1.1",
                "192.168.1.1",
                "it may not look like an IP address",
            ),
            (
                "s3://xn--photos",
                "xn--photos",
                "it uses a prefix or suffix S3 reserves",
            ),
            (
                "s3://photos-s3alias",
                "photos-s3alias",
                "it uses a prefix or suffix S3 reserves",
            ),
            (
                "s3://b?x=1",
                "b?x=1",
                "it may hold only lower-case letters, digits, `.` and `-`",
            ),
        ] {
            check(url, Err(&bad(url, bucket, why)));
        }
        check(
            &format!("s3://{}", "a".repeat(64)),
            Err(&bad(
                &format!("s3://{}", "a".repeat(64)),
                &"a".repeat(64),
                "it must be 3 to 63 characters long",
            )),
        );
        check(
            "s3://photos/a//b",
            Err("`s3://photos/a//b`: the prefix has an empty path segment (`//`)"),
        );
        check(
            "s3://photos//",
            Err("`s3://photos//`: the prefix has an empty path segment (`//`)"),
        );
        check(
            "s3://photos/a/../b",
            Err("`s3://photos/a/../b`: the prefix has a `.` or `..` path segment"),
        );
        check(
            "s3://photos/./",
            Err("`s3://photos/./`: the prefix has a `.` or `..` path segment"),
        );
    }

    proptest::proptest! {
        /// Whatever is typed: a location or an error, never a panic; an S3
        /// location's bucket obeys S3's rules and its prefix is a folder
        /// of safe segments.
        #[test]
        fn any_argument_is_a_location_or_an_error(arg in "(s3|S3|gs)?(://)?[a-z0-9.-]{0,8}(/[a-zA-Z0-9 ./+%_-]{0,6}){0,4}|\\PC{0,40}") {
            match Location::parse(OsStr::new(&arg)) {
                Ok(Location::S3(url)) => {
                    proptest::prop_assert!(check_bucket_name(&url.bucket).is_ok(), "{arg}");
                    let p = &url.prefix;
                    proptest::prop_assert!(p.is_empty() || (p.ends_with('/') && !p.starts_with('/')), "{arg}: {p:?}");
                    proptest::prop_assert!(!p.contains("//") && !p.split('/').any(|s| s == "." || s == ".."), "{arg}: {p:?}");
                    proptest::prop_assert!(arg.to_ascii_lowercase().starts_with("s3://"), "{arg}");
                }
                Ok(Location::Local(path)) => {
                    proptest::prop_assert_eq!(path.as_os_str(), OsStr::new(&arg));
                    proptest::prop_assert!(!arg.to_ascii_lowercase().starts_with("s3://"), "{arg}");
                }
                Err(e) => proptest::prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn urls_display_as_folders() {
        let Ok(Location::S3(url)) = Location::parse(OsStr::new("s3://photos/original")) else {
            panic!("not an S3 URL");
        };
        assert_eq!(url.to_string(), "s3://photos/original/");
    }
}
