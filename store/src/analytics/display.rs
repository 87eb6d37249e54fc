//! Every type a query can return, as Arrow and as text: an aligned table, CSV and JSON.
//!
//! DuckDB hands results over as Arrow. A few of its types have no faithful Arrow form:
//! `VARIANT` cannot be converted at all, `TIMETZ` would lose its offset, `UHUGEINT` would
//! wrap above 2^127, and `BIT`, `BIGNUM` and `GEOMETRY` would arrive as their internal
//! bytes. A column holding one of them (at any depth of a list, struct, map or union) is
//! cast to text by DuckDB itself before it is handed over, and its Arrow field carries
//! the metadata key [`SHOWN_AS_TEXT`] naming the type, so a caller (and the CLI, on
//! stderr) can say so. Everything else keeps its Arrow type.
//!
//! As text, every Arrow type displays through arrow's own formatter (timestamps with
//! zones in RFC 3339, intervals, decimals, lists, structs, maps, unions, dictionaries,
//! binary as hex, NULL as given). JSON rows carry every column, NULLs as `null`; numbers
//! that JSON cannot hold exactly are strings: decimals wider than 15 digits (HUGEINT
//! among them), and the floats NaN, `Infinity` and `-Infinity` (as PostgreSQL writes
//! them; inside a list or struct they are `null`). A union, and a map whose keys are not
//! strings, is written as its text.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Float16Type, Float32Type, Float64Type, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use duckdb::Connection;

use super::AnalyticsError;
use super::guard::quoted_name;

/// The Arrow field metadata key set on a column that DuckDB cast to text; its value is
/// the DuckDB type the column holds (such as `VARIANT`).
pub const SHOWN_AS_TEXT: &str = "orderlog.shown_as_text";

/// Decimals up to this many digits are JSON numbers (an `f64` holds 15 digits exactly).
const JSON_EXACT_DIGITS: u8 = 15;

/// The words of a DuckDB type as DESCRIBE writes it (`STRUCT("bit" VARIANT)[]`), upper
/// case, without the quoted field names.
fn type_words(ty: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in ty.chars() {
        if c == '"' {
            // `""` inside quotes toggles twice: still quoted.
            quoted = !quoted;
        } else if !quoted && (c.is_ascii_alphanumeric() || c == '_') {
            word.push(c.to_ascii_uppercase());
            continue;
        }
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The DuckDB type in the type `ty` (as DESCRIBE writes it) that has no faithful Arrow
/// form, if any, at any depth.
fn without_arrow_form(ty: &str) -> Option<&'static str> {
    let words = type_words(ty);
    for (i, word) in words.iter().enumerate() {
        let found = match word.as_str() {
            "VARIANT" => "VARIANT",
            "UHUGEINT" => "UHUGEINT",
            "BIT" => "BIT",
            "BIGNUM" => "BIGNUM",
            "GEOMETRY" => "GEOMETRY",
            "TIME" if words.get(i + 1).is_some_and(|w| w == "WITH") => "TIMETZ",
            _ => continue,
        };
        return Some(found);
    }
    None
}

/// A query rewritten so that every column without a faithful Arrow form arrives as text.
#[derive(Debug, Default)]
pub(crate) struct TextColumns {
    /// The statement to run instead (`None`: run the query as it is).
    pub(crate) sql: Option<String>,
    /// Column position -> the DuckDB type it held.
    pub(crate) columns: HashMap<usize, String>,
}

/// Finds the columns of `sql` (a query expression) that must arrive as text, from
/// DuckDB's own description of the result (binding only, no rows), and the statement that
/// casts them (by position, keeping every column's name).
pub(crate) fn text_columns(
    conn: &Connection,
    sql: &str,
    fail: &dyn Fn(duckdb::Error) -> AnalyticsError,
) -> Result<TextColumns, AnalyticsError> {
    let describe = format!("DESCRIBE {sql}");
    let mut stmt = conn.prepare(&describe).map_err(fail)?;
    let described: Vec<(String, String)> = stmt
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
        .map_err(fail)?
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let columns: HashMap<usize, String> = described
        .iter()
        .enumerate()
        .filter_map(|(i, (_, ty))| without_arrow_form(ty).map(|t| (i, t.to_owned())))
        .collect();
    if columns.is_empty() {
        return Ok(TextColumns::default());
    }
    let select: Vec<String> = described
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let at = i + 1;
            if columns.contains_key(&i) {
                format!("CAST(#{at} AS VARCHAR) AS {}", quoted_name(name))
            } else {
                format!("#{at} AS {}", quoted_name(name))
            }
        })
        .collect();
    Ok(TextColumns { sql: Some(format!("SELECT {} FROM (\n{sql}\n)", select.join(", "))), columns })
}

/// `batches` with the fields of `columns` marked [`SHOWN_AS_TEXT`].
pub(crate) fn mark_text_columns(
    batches: Vec<RecordBatch>,
    columns: &HashMap<usize, String>,
) -> Result<Vec<RecordBatch>, AnalyticsError> {
    if columns.is_empty() {
        return Ok(batches);
    }
    batches
        .into_iter()
        .map(|batch| {
            let fields: Vec<Field> = batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| match columns.get(&i) {
                    Some(ty) => f
                        .as_ref()
                        .clone()
                        .with_metadata(HashMap::from([(SHOWN_AS_TEXT.to_owned(), ty.clone())])),
                    None => f.as_ref().clone(),
                })
                .collect();
            RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec())
                .map_err(|e| AnalyticsError::Result(e.to_string()))
        })
        .collect()
}

/// One line per column DuckDB cast to text: its name and the type it held.
pub fn text_column_notes(batches: &[RecordBatch]) -> Vec<String> {
    let Some(first) = batches.first() else {
        return Vec::new();
    };
    first
        .schema()
        .fields()
        .iter()
        .filter_map(|f| {
            f.metadata().get(SHOWN_AS_TEXT).map(|ty| {
                format!("column {:?} holds {ty}, which Arrow cannot carry: shown as text", f.name())
            })
        })
        .collect()
}

fn display_error(e: impl std::fmt::Display) -> AnalyticsError {
    AnalyticsError::Result(format!("cannot display the result: {e}"))
}

/// The column names of a result.
fn header(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .first()
        .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
        .unwrap_or_default()
}

/// Hands every row of `batches` to `row` as text cells, one row at a time (no result is
/// held as text whole): a NULL cell as `null_text`, a NULL inside a list, struct or map as
/// `NULL`. Stops early when `row` returns false.
fn each_row(
    batches: &[RecordBatch],
    null_text: &str,
    row: &mut dyn FnMut(&[String]) -> bool,
) -> Result<(), AnalyticsError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut cells = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()
            .map_err(display_error)?;
        // Logical nulls: a column of DuckDB's NULL type has no validity buffer.
        let nulls: Vec<_> = batch.columns().iter().map(|c| c.logical_nulls()).collect();
        for at in 0..batch.num_rows() {
            cells.clear();
            for (f, nulls) in formatters.iter().zip(&nulls) {
                if nulls.as_ref().is_some_and(|n| n.is_null(at)) {
                    cells.push(null_text.to_owned());
                } else {
                    cells.push(f.value(at).try_to_string().map_err(display_error)?);
                }
            }
            if !row(&cells) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// An aligned text table, a line at a time to `out` (which returns false to stop):
/// header, rule, rows (numbers right-aligned), and a row count. The cells are formatted
/// twice (once for the widths), so no result is held as text whole.
pub fn write_table(
    batches: &[RecordBatch],
    out: &mut dyn FnMut(String) -> bool,
) -> Result<(), AnalyticsError> {
    let names = header(batches);
    let numeric: Vec<bool> = batches
        .first()
        .map(|b| b.columns().iter().map(|c| c.data_type().is_numeric()).collect())
        .unwrap_or_default();
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    let mut rows = 0usize;
    each_row(batches, "NULL", &mut |row| {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
        rows += 1;
        true
    })?;
    let line = |row: &[String], align_numbers: bool| {
        let parts: Vec<String> =
            row.iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((cell, &w), &num)| {
                    if num && align_numbers { format!("{cell:>w$}") } else { format!("{cell:<w$}") }
                })
                .collect();
        parts.join(" | ").trim_end().to_owned()
    };
    if !out(line(&names, false))
        || !out(widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("-+-"))
    {
        return Ok(());
    }
    let mut open = true;
    each_row(batches, "NULL", &mut |row| {
        open = out(line(row, true));
        open
    })?;
    if open {
        out(format!("({rows} row{})", if rows == 1 { "" } else { "s" }));
    }
    Ok(())
}

/// [`write_table`] into lines.
pub fn table_lines(batches: &[RecordBatch]) -> Result<Vec<String>, AnalyticsError> {
    let mut lines = Vec::new();
    write_table(batches, &mut |line| {
        lines.push(line);
        true
    })?;
    Ok(lines)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// CSV (RFC 4180), a line at a time to `out` (which returns false to stop): a header
/// line, then one line per row; NULL is an empty field.
pub fn write_csv(
    batches: &[RecordBatch],
    out: &mut dyn FnMut(String) -> bool,
) -> Result<(), AnalyticsError> {
    if !out(header(batches).iter().map(|n| csv_field(n)).collect::<Vec<_>>().join(",")) {
        return Ok(());
    }
    each_row(batches, "", &mut |row| {
        out(row.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","))
    })
}

/// [`write_csv`] into lines.
pub fn csv_lines(batches: &[RecordBatch]) -> Result<Vec<String>, AnalyticsError> {
    let mut lines = Vec::new();
    write_csv(batches, &mut |line| {
        lines.push(line);
        true
    })?;
    Ok(lines)
}

/// `array` as text, NULLs kept (and `NULL` inside nested values).
fn as_text(array: &dyn Array) -> Result<ArrayRef, AnalyticsError> {
    let options = FormatOptions::default().with_null("NULL");
    let formatter = ArrayFormatter::try_new(array, &options).map_err(display_error)?;
    let nulls = array.logical_nulls();
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 8);
    for row in 0..array.len() {
        if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            out.append_null();
        } else {
            out.append_value(formatter.value(row).try_to_string().map_err(display_error)?);
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Whether arrow's JSON writer writes `ty` exactly: no union and no decimal wider than
/// an `f64` holds, at any depth. (A float nested in a list or struct is written as a
/// number, and a NaN or infinity there as `null`; top-level floats are written apart.)
fn json_exact(ty: &DataType) -> bool {
    match ty {
        DataType::Union(..) | DataType::RunEndEncoded(..) => false,
        DataType::Decimal32(p, _) | DataType::Decimal64(p, _) => *p <= JSON_EXACT_DIGITS,
        DataType::Decimal128(p, _) | DataType::Decimal256(p, _) => *p <= JSON_EXACT_DIGITS,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => json_exact(f.data_type()),
        // JSON object keys are strings: a map keyed otherwise is written as its text.
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                matches!(
                    kv[0].data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) && json_exact(kv[1].data_type())
            }
            _ => false,
        },
        DataType::Struct(fields) => fields.iter().all(|f| json_exact(f.data_type())),
        DataType::Dictionary(_, value) => json_exact(value),
        _ => true,
    }
}

/// A float column as JSON values: finite numbers as numbers (a `REAL` as the shortest
/// decimal that reads back as it, `0.1` and not its `f64` widening), NaN and the
/// infinities as strings, NULL as `null`.
fn float_json(array: &dyn Array) -> Result<Vec<serde_json::Value>, AnalyticsError> {
    let number = |x: f64, shortest: String| -> serde_json::Value {
        if x.is_nan() {
            "NaN".into()
        } else if x.is_infinite() {
            if x > 0.0 { "Infinity".into() } else { "-Infinity".into() }
        } else {
            let exact = shortest.parse::<f64>().unwrap_or(x);
            serde_json::Number::from_f64(exact).map_or(serde_json::Value::Null, Into::into)
        }
    };
    let values: Vec<serde_json::Value> = match array.data_type() {
        DataType::Float16 => array
            .as_primitive::<Float16Type>()
            .iter()
            .map(|v| v.map_or(serde_json::Value::Null, |x| number(x.to_f64(), x.to_string())))
            .collect(),
        DataType::Float32 => array
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map_or(serde_json::Value::Null, |x| number(f64::from(x), x.to_string())))
            .collect(),
        _ => {
            let as_f64 = arrow::compute::cast(array, &DataType::Float64).map_err(display_error)?;
            as_f64
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.map_or(serde_json::Value::Null, |x| number(x, x.to_string())))
                .collect()
        }
    };
    Ok(values)
}

/// Record batches as a JSON array of row objects keyed by column name; see the module
/// docs for how each type is written.
pub fn batches_to_json(batches: &[RecordBatch]) -> Result<serde_json::Value, AnalyticsError> {
    let mut rows = Vec::new();
    for batch in batches {
        // Floats are written here; columns arrow's writer cannot write exactly become text.
        let mut floats: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            match field.data_type() {
                DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                    floats.push((field.name().clone(), float_json(column.as_ref())?));
                    continue;
                }
                ty if !json_exact(ty) => {
                    fields.push(Field::new(field.name(), DataType::Utf8, true));
                    columns.push(as_text(column.as_ref())?);
                }
                _ => {
                    fields.push(field.as_ref().clone());
                    columns.push(Arc::clone(column));
                }
            }
        }
        let mut objects: Vec<serde_json::Map<String, serde_json::Value>> = if columns.is_empty() {
            vec![serde_json::Map::new(); batch.num_rows()]
        } else {
            let rest = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                .map_err(display_error)?;
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(Vec::new());
            writer.write(&rest).map_err(display_error)?;
            writer.finish().map_err(display_error)?;
            let bytes = writer.into_inner();
            let parsed: Vec<serde_json::Map<String, serde_json::Value>> = if bytes.is_empty() {
                Vec::new()
            } else {
                serde_json::from_slice(&bytes).map_err(display_error)?
            };
            parsed
        };
        for (name, values) in floats {
            for (object, value) in objects.iter_mut().zip(values) {
                object.insert(name.clone(), value);
            }
        }
        rows.extend(objects.into_iter().map(serde_json::Value::Object));
    }
    Ok(serde_json::Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn types_without_an_arrow_form_are_found_at_any_depth_and_not_in_names() {
        assert_eq!(without_arrow_form("VARIANT"), Some("VARIANT"));
        assert_eq!(without_arrow_form("STRUCT(\"bit\" VARIANT)[]"), Some("VARIANT"));
        assert_eq!(without_arrow_form("TIME WITH TIME ZONE"), Some("TIMETZ"));
        assert_eq!(without_arrow_form("MAP(VARCHAR, UHUGEINT)"), Some("UHUGEINT"));
        assert_eq!(without_arrow_form("STRUCT(\"bit\" INTEGER, \"a\"\"b\" BIT)"), Some("BIT"));
        for fine in [
            "STRUCT(\"bit\" INTEGER)",
            "STRUCT(\"variant \"\" geometry\" INTEGER)",
            "TIMESTAMP WITH TIME ZONE",
            "TIME",
            "HUGEINT",
            "INTEGER[3]",
        ] {
            assert_eq!(without_arrow_form(fine), None, "{fine}");
        }
    }

    #[test]
    fn json_writes_wide_decimals_as_text_at_any_depth() {
        assert!(json_exact(&DataType::Decimal128(15, 2)));
        assert!(!json_exact(&DataType::Decimal128(38, 0)));
        let list_of = |ty| DataType::List(Arc::new(Field::new("item", ty, true)));
        assert!(json_exact(&list_of(DataType::Float64)));
        assert!(!json_exact(&list_of(DataType::Decimal128(38, 0))));
    }
}
