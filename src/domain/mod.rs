//! Pure types and rules of the catalog: no I/O, no database, no HTTP.

pub mod caller;
pub mod diff;
pub mod fingerprint;
pub mod folder;
pub mod import;
pub mod item;
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

/// The longest folder name or item title, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks one name (a folder name, an item title): non-empty, not `.` or `..`, no `/`, no NUL or
/// other control character, at most [`MAX_NAME_BYTES`]. `noun` names it in messages; `slash_hint`
/// follows the message about `/`.
pub fn check_name(noun: &str, name: &str, slash_hint: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(Invalid::new(format!("a {noun} must not be empty")));
    }
    if name == "." || name == ".." {
        return Err(Invalid::new(format!("`{name}` is not allowed as a {noun}")));
    }
    if name.contains('/') {
        return Err(Invalid::new(format!(
            "{noun} `{name}` must not contain `/`{slash_hint}"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(format!(
            "a {noun} must not contain NUL or control characters"
        )));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Invalid::new(format!(
            "a {noun} must be at most {MAX_NAME_BYTES} bytes, got {}",
            name.len()
        )));
    }
    Ok(())
}
