//! A small builder for dynamic SQL that numbers its placeholders `$1, $2, …`, the one syntax
//! both SQLite and PostgreSQL accept (sqlx's `QueryBuilder` writes `?` for the Any driver).

use sqlx::any::{Any, AnyArguments};
use sqlx::{Arguments, AssertSqlSafe, Encode, Type};

use super::StoreError;

/// SQL text plus the values bound to its placeholders, in order.
#[derive(Default)]
pub struct Sql {
    text: String,
    args: AnyArguments,
    count: usize,
}

impl Sql {
    /// Starts with a fixed piece of SQL.
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            ..Self::default()
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any> + Send + 'static,
    {
        self.count += 1;
        self.text.push('$');
        self.text.push_str(&self.count.to_string());
        // Encoding into AnyArguments only fails for types Any cannot carry, which `T: Type<Any>` rules out.
        let _ = self.args.add(value);
        self
    }

    /// Appends `$a, $b, …` bound to each value, for `IN (…)` lists.
    pub fn bind_list<T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any> + Send + 'static,
    {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self
    }

    /// The finished query, ready to execute or fetch.
    pub fn build(self) -> sqlx::query::Query<'static, Any, AnyArguments> {
        sqlx::query_with(AssertSqlSafe(self.text), self.args)
    }

    /// The finished query mapped onto `R`.
    pub fn build_as<R>(self) -> sqlx::query::QueryAs<'static, Any, R, AnyArguments>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_as_with(AssertSqlSafe(self.text), self.args)
    }
}

/// Escapes `%`, `_` and `\` so `text` matches literally inside a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A pattern that matches any text containing `needle`, case-insensitively when the column
/// holds text lowered the same way (Rust's Unicode-aware `to_lowercase`).
pub fn contains_pattern(needle: &str) -> String {
    format!("%{}%", like_escape(&needle.to_lowercase()))
}

/// Wraps a decode failure of a stored value into a `StoreError`.
pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("stored {what} cannot be read: {detail}"))
}
