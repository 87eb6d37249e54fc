//! Arrow batches into DuckDB tables, through DuckDB's Arrow appender: the rows are
//! copied into DuckDB's own format, and no table function that reads Arrow stays
//! callable by a user's query (duckdb-rs's `arrow()` reads from a registry shared by the
//! whole process).

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use duckdb::Connection;

use super::AnalyticsError;
use super::guard::quoted_identifier;

/// DuckDB's column type for an Arrow type the store's tables hold (`None`: not one of
/// them).
pub fn sql_type(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::UInt8 => "UTINYINT",
        DataType::UInt16 => "USMALLINT",
        DataType::UInt32 => "UINTEGER",
        DataType::UInt64 => "UBIGINT",
        DataType::Int8 => "TINYINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "BIGINT",
        DataType::Float32 => "FLOAT",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Utf8 => "VARCHAR",
        _ => return None,
    })
}

/// `CREATE TABLE <table> (...)` with the columns of `schema` (non-nullable fields
/// `NOT NULL`); `if_missing` adds `IF NOT EXISTS`.
pub fn create_sql(
    table: &str,
    schema: &arrow::datatypes::Schema,
    if_missing: bool,
) -> Result<String, AnalyticsError> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let ty = sql_type(field.data_type()).ok_or_else(|| {
            AnalyticsError::Result(format!(
                "column {} has type {}, which the store's DuckDB tables do not hold",
                field.name(),
                field.data_type()
            ))
        })?;
        let null = if field.is_nullable() { "" } else { " NOT NULL" };
        columns.push(format!("{} {ty}{null}", quoted_identifier(field.name())?));
    }
    let exists = if if_missing { "IF NOT EXISTS " } else { "" };
    Ok(format!("CREATE TABLE {exists}{} ({})", quoted_identifier(table)?, columns.join(", ")))
}

/// Appends `batch` to `table` through the Arrow appender.
pub fn append(conn: &Connection, table: &str, batch: RecordBatch) -> Result<(), AnalyticsError> {
    let fail = |e: duckdb::Error| AnalyticsError::query(&format!("append to {table}"), &e);
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let mut appender = conn.appender(table).map_err(fail)?;
    appender.append_record_batch(batch).map_err(fail)?;
    appender.flush().map_err(fail)
}

/// Creates `table` with `batch`'s columns and fills it.
pub(crate) fn load(
    conn: &Connection,
    table: &str,
    batch: RecordBatch,
) -> Result<(), AnalyticsError> {
    let sql = create_sql(table, &batch.schema(), false)?;
    conn.execute_batch(&sql).map_err(|e| AnalyticsError::query(&sql, &e))?;
    append(conn, table, batch)
}
