//! A small builder for dynamic SQL that numbers its placeholders `$1, $2, …`, the one syntax
//! both SQLite and PostgreSQL accept (sqlx's `QueryBuilder` writes `?` for the Any driver).

use sqlx::any::{Any, AnyArguments};
use sqlx::{Arguments, AssertSqlSafe, Encode, Type};

use uuid::Uuid;

use super::Dialect;
use crate::domain::page::SortKey;

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

    /// Appends `column IN (…)` over `values` bound as one JSON array: one placeholder however
    /// many values (sqlx's SQLite driver looks each placeholder up by name, so a statement with
    /// a thousand of them costs time quadratic in their number). On PostgreSQL the array is
    /// unpacked once (`= ANY(ARRAY(…))`, an index condition): as an `IN (SELECT …)` semi-join,
    /// a generic plan over a table without fresh statistics unpacked it again for every row
    /// (seconds per statement on 16,000 rows and 1,000 keys).
    pub fn push_in_json(
        &mut self,
        dialect: Dialect,
        column: &str,
        values: impl IntoIterator<Item = String>,
    ) -> &mut Self {
        let values: Vec<String> = values.into_iter().collect();
        let json = serde_json::to_string(&values).unwrap_or_else(|_| "[]".into());
        self.push(column);
        match dialect {
            Dialect::Sqlite => self.push(" IN (SELECT value FROM json_each(").bind(json).push("))"),
            Dialect::Postgres => self
                .push(" = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(")
                .bind(json)
                .push(" AS jsonb))))"),
        }
    }

    /// Appends a placeholder bound to `value`, typed as its column is (a NULL too).
    pub fn bind_value(&mut self, value: Value) -> &mut Self {
        match value {
            Value::Text(text) => self.bind(text),
            Value::Int(n) => self.bind(n),
        }
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

/// A value for a column, typed as the column is: a NULL must be bound with its column's type
/// (PostgreSQL refuses a text NULL for a BIGINT column).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A TEXT column's value.
    Text(Option<String>),
    /// An INTEGER (SQLite) or BIGINT (PostgreSQL) column's value.
    Int(Option<i64>),
}

impl Value {
    /// Whether the value is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Text(None) | Value::Int(None))
    }

    /// Appends the value as JSON (a string, a number or null) to `out`, for rows sent as one
    /// JSON array.
    pub fn write_json(&self, out: &mut String) {
        match self {
            // A `str` always serializes.
            Value::Text(Some(text)) => out.push_str(&serde_json::to_string(text).unwrap_or_default()),
            Value::Int(Some(n)) => out.push_str(&n.to_string()),
            Value::Text(None) | Value::Int(None) => out.push_str("null"),
        }
    }
}

/// Appends a keyset page: rows after `after` (a sort key and id) in the order of `column` then
/// `id_column`, ascending or descending, at most `limit` of them.
pub fn push_page(
    sql: &mut Sql,
    column: &str,
    id_column: &str,
    desc: bool,
    after: Option<&(SortKey, Uuid)>,
    limit: u32,
) {
    let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
    if let Some((key, id)) = after {
        // A row-value comparison, not `a > x OR (a = x AND b > y)`: both databases turn it into
        // one range scan of the (…, column, id) index, where SQLite answers the OR form with two
        // index searches and a sort of everything after the cursor.
        sql.push(&format!(" AND ({column}, {id_column}) {cmp} ("));
        match key {
            SortKey::Text(text) => sql.bind(text.clone()),
            SortKey::Int(n) => sql.bind(*n),
        };
        sql.push(", ").bind(id.to_string()).push(")");
    }
    sql.push(&format!(" ORDER BY {column} {dir}, {id_column} {dir} LIMIT "))
        .bind(i64::from(limit));
}

/// An aggregate that turns the rows of a query into one JSON array text of arrays of `elements`
/// (comma-separated SQL expressions), in `order_by` order when given; `NULL` on PostgreSQL when
/// there are no rows, `[]` on SQLite. Reading many rows as one spares sqlx's SQLite driver a
/// hand-over between threads per row and two copies of every value.
pub fn json_rows(dialect: Dialect, elements: &str, order_by: Option<&str>) -> String {
    let order = order_by.map(|order| format!(" ORDER BY {order}")).unwrap_or_default();
    match dialect {
        Dialect::Sqlite => format!("json_group_array(json_array({elements}){order})"),
        Dialect::Postgres => format!("CAST(json_agg(json_build_array({elements}){order}) AS TEXT)"),
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
