//! Keys as S3 sends them: notifications and Batch Operations manifests
//! both URL-encode object keys. Its own module so that the event parser
//! (`events`) and the Batch Operations parser (`batch`) share it without
//! naming each other both ways.

/// Decodes a key the way S3 encodes it in notifications: `+` is a space,
/// then `%XX` escapes are UTF-8 bytes. `None` when the result is not UTF-8.
pub fn decode_key(encoded: &str) -> Option<String> {
    let spaced = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}
