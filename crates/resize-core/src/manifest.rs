//! What a web page needs to use a source's variants (issue 16, in
//! progress): `srcset` strings whose URLs survive any key. The manifest
//! document itself comes next.

/// `key` as a URL path: every byte but the unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`) and `/` percent-encoded, UTF-8 first. A space
/// or a comma would split a `srcset` candidate; `%`, `#` and `?` would
/// change what a URL names; `+` reads as a space to S3's website
/// endpoints.
///
/// ```
/// use resize_core::url_path;
/// assert_eq!(url_path("trips/summer 2024/a+b,c-360.jpg"), "trips/summer%202024/a%2Bb%2Cc-360.jpg");
/// assert_eq!(url_path("100%/#1?.jpg"), "100%25/%231%3F.jpg");
/// assert_eq!(url_path("naïve.webp"), "na%C3%AFve.webp");
/// ```
pub fn url_path(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// A `srcset` value: each `(URL path, width)` as `url Nw`, narrowest
/// first, the paths encoded by [`url_path`].
///
/// ```
/// use resize_core::srcset;
/// assert_eq!(srcset(&[("a b-720.jpg", 720), ("a b-360.jpg", 360)]), "a%20b-360.jpg 360w, a%20b-720.jpg 720w");
/// ```
pub fn srcset(candidates: &[(&str, u32)]) -> String {
    let mut sorted: Vec<&(&str, u32)> = candidates.iter().collect();
    sorted.sort_by_key(|(path, width)| (*width, *path));
    sorted
        .iter()
        .map(|(path, width)| format!("{} {width}w", url_path(path)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The decoding a browser applies to a URL path, for the property.
    fn decode(path: &str) -> Vec<u8> {
        let bytes = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        /// Any key: the path has no character that splits a candidate or
        /// changes what the URL names, and decodes back to the key.
        #[test]
        fn url_paths_round_trip_and_never_split(key in "\\PC{0,40}") {
            let path = url_path(&key);
            prop_assert!(path.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert!(!path.contains([' ', ',', '#', '?', '+']));
            prop_assert_eq!(decode(&path), key.as_bytes());
            let set = srcset(&[(&key, 360), (&key, 96)]);
            prop_assert_eq!(set.split(", ").count(), 2);
            let first = format!("{} 96w", path);
            prop_assert!(set.starts_with(&first));
        }
    }
}
