//! Pure types and rules of the catalog: no I/O, no database, no HTTP.

pub mod caller;
pub mod diff;
pub mod fingerprint;
pub mod folder;
pub mod job;
pub mod page;
pub mod schedule;

/// A value a user supplied that breaks one of the catalog's rules; the text says which and how
/// to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    /// Builds an `Invalid` from anything printable.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
