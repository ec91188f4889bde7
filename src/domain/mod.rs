//! Pure types and rules of the catalog: no I/O, no database, no HTTP.

pub mod audit;
pub mod caller;
pub mod diff;
pub mod fingerprint;
pub mod folder;
pub mod import;
pub mod item;
pub mod job;
pub mod media;
pub mod page;
pub mod quota;
pub mod schedule;
pub mod signed_url;
pub mod team;
pub mod webhook;

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

/// Whether `c` reorders text invisibly (bidirectional marks, embeddings, overrides, isolates) or
/// breaks lines: such a character makes a name display as something it is not
/// (`exe.txt` shown for `txt.exe`).
pub(crate) fn reorders_text(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
    )
}

/// A name a client gives (a folder name, an item title) as it is stored: NFC-normalized (a
/// composed and a decomposed `café` are one name), held to [`check_name`], with no character that
/// reorders text invisibly and no `\` (Windows reads it as a path separator, so a name holding
/// one could point a download or an archive entry somewhere else).
pub fn client_name(noun: &str, name: &str, slash_hint: &str) -> Result<String, Invalid> {
    use unicode_normalization::UnicodeNormalization;
    let name: String = name.nfc().collect();
    check_name(noun, &name, slash_hint)?;
    if name.contains('\\') {
        return Err(Invalid::new(format!(
            "a {noun} must not contain `\\` (Windows reads it as a path separator); use another character"
        )));
    }
    if name.chars().any(reorders_text) {
        return Err(Invalid::new(format!(
            "a {noun} must not contain bidirectional-override, isolate or line-separator characters"
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_are_nfc_and_refuse_what_could_mislead() {
        let composed = client_name("title", "caf\u{e9}", "").expect("valid");
        let decomposed = client_name("title", "cafe\u{301}", "").expect("valid");
        assert_eq!(composed, decomposed);
        assert_eq!(composed, "caf\u{e9}");
        for bad in [
            "..\\..\\evil.txt",
            "a\\b",
            "txt\u{202E}exe.txt",
            "a\u{2066}b",
            "a\u{200F}",
            "a\u{2028}b",
            "a\tb",
            "",
        ] {
            assert!(client_name("title", bad, "").is_err(), "{bad:?}");
        }
        assert_eq!(
            client_name("title", "日本語 (1).txt", "").as_deref(),
            Ok("日本語 (1).txt")
        );
    }
}
