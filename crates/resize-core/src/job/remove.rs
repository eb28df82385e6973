//! A removed source: [`remove_variants`] deletes the variants and the
//! manifest whose metadata names it.

use std::ops::ControlFlow;

use super::judge::META_SOURCE;
use super::outcome::{contain, JobError, Outcome, Report, Skip, Stop};
use crate::recipe::Recipe;
use crate::storage::Storage;

/// A source was removed: deletes the variants whose metadata names it,
/// found by listing its output prefix, and its manifest (first). Keeps them when the source exists
/// again (events come at least once and in no set order, so a late
/// removal must not delete a new upload's variants). Needs a store that
/// lists, deletes and keeps metadata; others fail with
/// [`StorageError::Unsupported`](crate::storage::StorageError::Unsupported).
pub fn remove_variants(storage: &dyn Storage, recipe: &Recipe, key: &str) -> Report {
    let outcome = match contain(key, || removal(storage, recipe, key)) {
        Ok(deleted) => Outcome::Deleted(deleted),
        Err(Stop::Skip(skip)) => Outcome::Skipped(skip),
        Err(Stop::Fail(e)) => Outcome::Failed(e),
    };
    Report {
        key: key.to_owned(),
        bytes_in: 0,
        outcome,
        manifest: None,
    }
}

fn removal(storage: &dyn Storage, recipe: &Recipe, key: &str) -> Result<Vec<String>, Stop> {
    let source = recipe.source_key(key).map_err(Skip::from)?;
    let check = |k: &str| {
        storage.head(k).map_err(|source| JobError::Check {
            key: k.to_owned(),
            source,
        })
    };
    if check(key)?.is_some() {
        return Err(Skip::Reappeared.into());
    }
    let prefix = source.output_prefix();
    let mut candidates = Vec::new();
    storage
        .list(&prefix, &mut |k| {
            if recipe.looks_like_output(k) {
                candidates.push(k.to_owned());
            }
            ControlFlow::Continue(())
        })
        .map_err(|source| JobError::List {
            prefix: prefix.clone(),
            source,
        })?;
    // The manifest goes first: it says the set is complete, which stops
    // being true with the first variant deleted.
    if let Some(manifest) = source.manifest_key() {
        candidates.retain(|c| c != manifest);
        candidates.insert(0, manifest.to_owned());
    }
    let mut deleted = Vec::new();
    for candidate in candidates {
        // Only objects whose metadata names this source are ours to delete.
        if check(&candidate)?.is_some_and(|m| m.get(META_SOURCE) == Some(key)) {
            storage.delete(&candidate).map_err(|source| JobError::Delete {
                key: candidate.clone(),
                source,
            })?;
            deleted.push(candidate);
        }
    }
    Ok(deleted)
}
