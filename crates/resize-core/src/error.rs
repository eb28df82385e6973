//! Errors at the core's boundaries: one enum each for recipes, rendering and
//! jobs. Messages are lowercase and name the value, the limit or the key.

use crate::recipe::Format;

/// A setting could not be turned into a [`Recipe`](crate::Recipe).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// A setting holds a value outside what it allows.
    #[error("invalid {var} value `{token}`: expected {allowed}")]
    Invalid {
        /// The setting (environment variable name).
        var: &'static str,
        /// The offending token.
        token: String,
        /// What the setting allows.
        allowed: &'static str,
    },
    /// The format is valid but this build was compiled without it.
    #[error("format `{format}` is not compiled into this build (enable the cargo feature `{format}`)")]
    FormatDisabled {
        /// The format asked for.
        format: Format,
    },
    /// The recursion guard refused the recipe: an output could be taken for a source.
    #[error("invalid REPLACEMENTS: outputs could loop back as sources: {reason}")]
    Loop {
        /// Which rule makes outputs look like sources.
        reason: String,
    },
}

impl RecipeError {
    pub(crate) fn invalid(var: &'static str, token: &str, allowed: &'static str) -> RecipeError {
        RecipeError::Invalid {
            var,
            token: token.to_owned(),
            allowed,
        }
    }
}

/// An image could not be rendered. Every variant is permanent for the bytes
/// given: retrying the same input cannot succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The input has no bytes.
    #[error("input is empty")]
    Empty,
    /// The input is larger than the byte limit.
    #[error("input is {size} bytes, over the limit of {limit} bytes")]
    TooManyBytes {
        /// Size of the input.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The header declares more pixels than the limit; nothing was allocated.
    #[error("image is {width}x{height} ({pixels} pixels), over the limit of {limit} pixels")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// width × height.
        pixels: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The bytes are not in a format this build decodes.
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// The header or pixel data is corrupt or truncated.
    #[error("cannot decode {format}: {message}")]
    Decode {
        /// The format the bytes claim to be.
        format: &'static str,
        /// What the decoder reported.
        message: String,
    },
    /// The image has a zero dimension.
    #[error("image has no pixels ({width}x{height})")]
    ZeroSize {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// An output cannot be encoded (for instance over the format's size limit).
    #[error("cannot encode {width}x{height} {format}: {message}")]
    Encode {
        /// The output format.
        format: Format,
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// What the encoder reported.
        message: String,
    },
    /// The resizer failed; a bug rather than a property of the input.
    #[error("cannot resize to {width}x{height}: {message}")]
    Resize {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// What the resizer reported.
        message: String,
    },
}

/// One job (one source key) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Reading the source failed.
    #[error("cannot read `{key}`: {source}")]
    Get {
        /// The source key.
        key: String,
        /// The storage error.
        #[source]
        source: crate::storage::StorageError,
    },
    /// Writing a variant failed.
    #[error("cannot write `{key}`: {source}")]
    Put {
        /// The variant key.
        key: String,
        /// The storage error.
        #[source]
        source: crate::storage::StorageError,
    },
    /// Checking whether a variant is up to date failed.
    #[error("cannot check `{key}`: {source}")]
    Check {
        /// The variant key.
        key: String,
        /// The storage error.
        #[source]
        source: crate::storage::StorageError,
    },
    /// The source could not be rendered.
    #[error("cannot render `{key}`: {source}")]
    Render {
        /// The source key.
        key: String,
        /// Why.
        #[source]
        source: RenderError,
    },
    /// An output key would be longer than storage keys may be.
    #[error("output key for `{key}` would be {len} bytes, over the limit of {limit}")]
    KeyTooLong {
        /// The source key.
        key: String,
        /// Length of the output key.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// An output key would be unsafe or equal to its source; the key rules
    /// make this impossible, so it marks a bug, and nothing is written.
    #[error("output key `{output}` for `{key}` is unsafe")]
    UnsafeOutputKey {
        /// The source key.
        key: String,
        /// The refused output key.
        output: String,
    },
}

impl JobError {
    /// Whether retrying could succeed (storage trouble) rather than the
    /// input being at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            JobError::Get { source, .. } | JobError::Put { source, .. } | JobError::Check { source, .. } => {
                source.is_transient()
            }
            JobError::Render { .. } | JobError::KeyTooLong { .. } | JobError::UnsafeOutputKey { .. } => false,
        }
    }
}

/// An error and its causes, `: `-joined, skipping a cause whose text the
/// message already contains (like anyhow's `{:#}`). Both adapters print
/// errors this way.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}
