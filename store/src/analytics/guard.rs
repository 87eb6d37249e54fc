//! What user-supplied SQL text may contain: identifiers are checked before they are
//! spliced into a statement, and a user query must be one read-only query.

use super::AnalyticsError;

/// Longest identifier accepted (DuckDB's own limit is higher; names this long are
/// already a mistake).
pub const IDENTIFIER_MAX: usize = 63;

/// Checks that `name` is a plain SQL identifier: an ASCII letter or `_`, then letters,
/// digits or `_`, at most [`IDENTIFIER_MAX`] bytes. Anything else (quotes, spaces, dots,
/// semicolons, comment markers) is refused, so the name can be spliced into a statement
/// (always double-quoted as well) without changing its meaning.
pub fn validate_identifier(name: &str) -> Result<(), AnalyticsError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > IDENTIFIER_MAX {
        Some("it is longer than 63 bytes")
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        Some("it must start with an ASCII letter or '_'")
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some("only ASCII letters, digits and '_' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => {
            Err(AnalyticsError::InvalidIdentifier { name: name.to_owned(), reason: reason.into() })
        }
        None => Ok(()),
    }
}

/// `name`, validated and double-quoted for use in a statement.
pub fn quoted_identifier(name: &str) -> Result<String, AnalyticsError> {
    validate_identifier(name)?;
    Ok(format!("\"{name}\""))
}

/// Any name as a quoted identifier (double quotes doubled), for names DuckDB itself
/// gave (a result's columns).
pub(crate) fn quoted_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal holding `text` (single quotes doubled).
pub(crate) fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Turns a user's query into a statement that can only read.
///
/// The text must be one statement: a `;` anywhere but at the end is refused (even
/// inside a string literal: refusing is simpler to trust than lexing DuckDB's every
/// literal form). It must start (after comments and parentheses) with a word that opens
/// a query (`SELECT`, `WITH`, `FROM`, `VALUES`, `DESCRIBE`, `SUMMARIZE`, ...), so
/// `COPY`, `ATTACH`, `INSERT`, `CREATE`, `SET`, `INSTALL` and the like are refused with
/// the reason. The statement then runs as a subquery, `SELECT * FROM (<query>)`, which
/// DuckDB parses only for query expressions: a second line of defence.
pub(crate) fn read_only_query(sql: &str) -> Result<String, AnalyticsError> {
    let body = sql.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if body.trim().is_empty() {
        return Err(AnalyticsError::NotAQuery {
            sql: sql.to_owned(),
            reason: "it is empty".into(),
        });
    }
    if let Some(at) = body.find(';') {
        return Err(AnalyticsError::NotAQuery {
            sql: sql.to_owned(),
            reason: format!("one statement only: ';' at byte {at}"),
        });
    }
    let keyword = first_keyword(body);
    if !QUERY_KEYWORDS.iter().any(|k| keyword.eq_ignore_ascii_case(k)) {
        return Err(AnalyticsError::NotAQuery {
            sql: sql.to_owned(),
            reason: format!(
                "{keyword:?} does not start a query; a query starts with one of {}",
                QUERY_KEYWORDS.join(", ")
            ),
        });
    }
    // The body sits on its own lines, so a trailing `--` comment cannot swallow the
    // closing parenthesis.
    Ok(format!("SELECT * FROM (\n{body}\n)"))
}

/// The words a query expression may start with (in DuckDB's grammar, what may stand in
/// `SELECT * FROM (...)`).
const QUERY_KEYWORDS: [&str; 10] = [
    "SELECT",
    "WITH",
    "FROM",
    "VALUES",
    "TABLE",
    "DESCRIBE",
    "SHOW",
    "SUMMARIZE",
    "PIVOT",
    "UNPIVOT",
];

/// The first word of `sql` after white space, comments and opening parentheses (empty if
/// there is none): `ATTACH`, `COPY`, `SET` and every other statement that is not a query
/// is refused on it, before DuckDB sees the text.
fn first_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(comment) = trimmed.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            rest = trimmed;
            break;
        }
    }
    let end = rest.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_plain_names_only() {
        for ok in ["orders", "_t", "Orders_2024", "a1"] {
            assert!(validate_identifier(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(IDENTIFIER_MAX + 1);
        for bad in [
            "",
            "1abc",
            "orders; DROP TABLE x",
            "a\"b",
            "a'b",
            "a b",
            "a.b",
            "a--",
            "a/*",
            "é",
            long.as_str(),
        ] {
            let err = validate_identifier(bad).expect_err(bad);
            assert!(
                matches!(&err, AnalyticsError::InvalidIdentifier { name, .. } if name == bad),
                "{bad}: {err}"
            );
        }
        assert_eq!(quoted_identifier("orders").expect("valid"), "\"orders\"");
    }

    #[test]
    fn string_literals_double_their_quotes() {
        assert_eq!(string_literal("/tmp/it's"), "'/tmp/it''s'");
    }

    #[test]
    fn queries_must_be_one_statement() {
        assert_eq!(
            read_only_query("SELECT 1;  \n").expect("one statement"),
            "SELECT * FROM (\nSELECT 1\n)"
        );
        assert!(read_only_query("SELECT 1 -- note").expect("comment").ends_with("-- note\n)"));
        for good in
            ["select 1", "  (SELECT 1)", "-- c\nWITH t AS (SELECT 1) FROM t", "/* x */ from orders"]
        {
            assert!(read_only_query(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "  ;; ",
            "SELECT 1; COPY orders TO 'x'",
            "SELECT ';'",
            "ATTACH 'x.db'",
            "-- hidden\nINSTALL httpfs",
            "/* a */ (LOAD httpfs)",
            "SET threads = 64",
            "COPY orders TO '/tmp/x.csv'",
            "PRAGMA version",
            "CALL duckdb_settings()",
        ] {
            assert!(
                matches!(read_only_query(bad), Err(AnalyticsError::NotAQuery { .. })),
                "{bad:?}"
            );
        }
    }
}
