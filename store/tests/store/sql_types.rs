//! Every type DuckDB can return displays as a table cell, a CSV field and a JSON value,
//! and so does a NULL of each; a type Arrow cannot carry arrives as text with a note.

use orderlog_store::analytics::{
    Analytics, AnalyticsOptions, SHOWN_AS_TEXT, Tail, ViewKind, batches_to_json, csv_lines,
    table_lines, text_column_notes,
};
use serde_json::{Value, json};

/// One type: the SQL of a value, then how it displays as a table cell, a CSV field and
/// a JSON value, and the DuckDB type named in its note if it arrives as text.
struct Case {
    sql: &'static str,
    table: &'static str,
    csv: &'static str,
    json: Value,
    as_text: Option<&'static str>,
}

fn case(sql: &'static str, table: &'static str, csv: &'static str, json: Value) -> Case {
    Case { sql, table, csv, json, as_text: None }
}

fn text(sql: &'static str, shown: &'static str, duckdb_type: &'static str) -> Case {
    Case { sql, table: shown, csv: shown, json: json!(shown), as_text: Some(duckdb_type) }
}

fn cases() -> Vec<Case> {
    vec![
        case("true", "true", "true", json!(true)),
        case("(-128)::TINYINT", "-128", "-128", json!(-128)),
        case("255::UTINYINT", "255", "255", json!(255)),
        case("(-32768)::SMALLINT", "-32768", "-32768", json!(-32768)),
        case("65535::USMALLINT", "65535", "65535", json!(65535)),
        case("(-2147483648)::INTEGER", "-2147483648", "-2147483648", json!(-2147483648i64)),
        case("4294967295::UINTEGER", "4294967295", "4294967295", json!(4294967295u64)),
        case(
            "(-9223372036854775808)::BIGINT",
            "-9223372036854775808",
            "-9223372036854775808",
            json!(i64::MIN),
        ),
        case(
            "18446744073709551615::UBIGINT",
            "18446744073709551615",
            "18446744073709551615",
            json!(u64::MAX),
        ),
        case(
            "(-170141183460469231731687303715884105727)::HUGEINT",
            "-170141183460469231731687303715884105727",
            "-170141183460469231731687303715884105727",
            json!("-170141183460469231731687303715884105727"),
        ),
        text(
            "340282366920938463463374607431768211455::UHUGEINT",
            "340282366920938463463374607431768211455",
            "UHUGEINT",
        ),
        case("1.5::FLOAT", "1.5", "1.5", json!(1.5)),
        // A REAL as the decimal it was written as, not its widening to a double.
        case("0.1::REAL", "0.1", "0.1", json!(0.1)),
        case("0.1::DOUBLE", "0.1", "0.1", json!(0.1)),
        case("'nan'::DOUBLE", "NaN", "NaN", json!("NaN")),
        case("'inf'::DOUBLE", "inf", "inf", json!("Infinity")),
        case("'-inf'::DOUBLE", "-inf", "-inf", json!("-Infinity")),
        case("1234.5::DECIMAL(10,2)", "1234.50", "1234.50", json!(1234.5)),
        case(
            "12345678901234567890.0123456789::DECIMAL(38,10)",
            "12345678901234567890.0123456789",
            "12345678901234567890.0123456789",
            json!("12345678901234567890.0123456789"),
        ),
        case("'a,\"b\"'", "a,\"b\"", "\"a,\"\"b\"\"\"", json!("a,\"b\"")),
        case("'\\xAA\\xBB'::BLOB", "aabb", "aabb", json!("aabb")),
        case("DATE '2024-02-29'", "2024-02-29", "2024-02-29", json!("2024-02-29")),
        case(
            "TIME '23:59:59.123456'",
            "23:59:59.123456",
            "23:59:59.123456",
            json!("23:59:59.123456"),
        ),
        case(
            "'12:00:00.123456789'::TIME_NS",
            "12:00:00.123456789",
            "12:00:00.123456789",
            json!("12:00:00.123456789"),
        ),
        text("TIMETZ '03:04:05+02'", "03:04:05+02", "TIMETZ"),
        case(
            "TIMESTAMP '2024-01-02 03:04:05.678'",
            "2024-01-02T03:04:05.678",
            "2024-01-02T03:04:05.678",
            json!("2024-01-02T03:04:05.678"),
        ),
        case(
            "TIMESTAMP_S '2024-01-02 03:04:05'",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05",
            json!("2024-01-02T03:04:05"),
        ),
        case(
            "TIMESTAMP_MS '2024-01-02 03:04:05.678'",
            "2024-01-02T03:04:05.678",
            "2024-01-02T03:04:05.678",
            json!("2024-01-02T03:04:05.678"),
        ),
        case(
            "TIMESTAMP_NS '2024-01-02 03:04:05.123456789'",
            "2024-01-02T03:04:05.123456789",
            "2024-01-02T03:04:05.123456789",
            json!("2024-01-02T03:04:05.123456789"),
        ),
        case(
            "TIMESTAMPTZ '2024-01-02 03:04:05+02'",
            "2024-01-02T01:04:05Z",
            "2024-01-02T01:04:05Z",
            json!("2024-01-02T01:04:05Z"),
        ),
        // The store's order_timestamp is epoch seconds: the most natural query on it.
        case(
            "to_timestamp(1700000000)",
            "2023-11-14T22:13:20Z",
            "2023-11-14T22:13:20Z",
            json!("2023-11-14T22:13:20Z"),
        ),
        case(
            "INTERVAL '1 year 2 months 3 days 04:05:06'",
            "14 mons 3 days 4 hours 5 mins 6.000000000 secs",
            "14 mons 3 days 4 hours 5 mins 6.000000000 secs",
            json!("14 mons 3 days 4 hours 5 mins 6.000000000 secs"),
        ),
        case(
            "'6b0e4bd1-2f8a-4b7e-9a1a-0f4b3a5e2c11'::UUID",
            "6b0e4bd1-2f8a-4b7e-9a1a-0f4b3a5e2c11",
            "6b0e4bd1-2f8a-4b7e-9a1a-0f4b3a5e2c11",
            json!("6b0e4bd1-2f8a-4b7e-9a1a-0f4b3a5e2c11"),
        ),
        case("'Shipped'::ENUM('Pending', 'Shipped')", "Shipped", "Shipped", json!("Shipped")),
        case("[1, NULL, 3]", "[1, NULL, 3]", "\"[1, NULL, 3]\"", json!([1, null, 3])),
        case("[1.5, 2.5]::DOUBLE[2]", "[1.5, 2.5]", "\"[1.5, 2.5]\"", json!([1.5, 2.5])),
        case("{'a': 1, 'b': 'x'}", "{a: 1, b: x}", "\"{a: 1, b: x}\"", json!({"a": 1, "b": "x"})),
        case("MAP {'k': 1}", "{k: 1}", "{k: 1}", json!({"k": 1})),
        case("MAP {1: 'one'}", "{1: one}", "{1: one}", json!("{1: one}")),
        case("union_value(n := 2)::UNION(n INT, s VARCHAR)", "{n=2}", "{n=2}", json!("{n=2}")),
        text("'10110'::BIT", "10110", "BIT"),
        text(
            "12345678901234567890123456789012345678901234567890::BIGNUM",
            "12345678901234567890123456789012345678901234567890",
            "BIGNUM",
        ),
        text("'POINT(1 2)'::GEOMETRY", "POINT (1 2)", "GEOMETRY"),
        text("42::VARIANT", "42", "VARIANT"),
        text("[{'v': 'x'::VARIANT}]", "[{'v': x}]", "VARIANT"),
        case("NULL", "NULL", "", json!(null)),
    ]
}

fn view() -> Analytics {
    Analytics::over(None, Tail::empty(), 0, ViewKind::AsOf, &AnalyticsOptions::default())
        .expect("view")
}

/// The table's one data row, the CSV's one data line, the JSON row's value, the note.
fn shown(analytics: &Analytics, sql: &str) -> (String, String, Value, Vec<String>, Option<String>) {
    let batches = analytics.query_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let field = batches[0].schema().field(0).clone();
    let table = table_lines(&batches).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let csv = csv_lines(&batches).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let json = batches_to_json(&batches).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(table.len(), 4, "{sql}: header, rule, row, count: {table:?}");
    assert_eq!(table[3], "(1 row)");
    assert_eq!(csv[0], "v", "{sql}");
    (
        table[2].trim().to_owned(),
        csv[1].clone(),
        json[0]["v"].clone(),
        text_column_notes(&batches),
        field.metadata().get(SHOWN_AS_TEXT).cloned(),
    )
}

#[test]
fn sql_every_type_and_its_null_display_as_table_csv_and_json() {
    let analytics = view();
    for c in cases() {
        let sql = format!("SELECT {} AS v", c.sql);
        let (table, csv, json, notes, marked) = shown(&analytics, &sql);
        assert_eq!((table.as_str(), csv.as_str()), (c.table, c.csv), "{sql}");
        assert_eq!(json, c.json, "{sql}");
        assert_eq!(marked.as_deref(), c.as_text, "{sql}");
        assert_eq!(notes.len(), usize::from(c.as_text.is_some()), "{sql}: {notes:?}");

        // A NULL of the same type: NULL in the table, an empty CSV field, JSON null.
        let ty = analytics.query_sql(&format!("SELECT typeof({}) AS t", c.sql)).expect("typeof");
        let ty = arrow::util::display::array_value_to_string(ty[0].column(0), 0).expect("type");
        let null_sql = format!("SELECT CAST(NULL AS {ty}) AS v");
        let (table, csv, json, _, marked) = shown(&analytics, &null_sql);
        assert_eq!((table.as_str(), csv.as_str(), &json), ("NULL", "", &Value::Null), "{null_sql}");
        assert_eq!(marked.as_deref(), c.as_text, "{null_sql}");
    }
}

#[test]
fn sql_duckdbs_own_tables_display_whole() {
    let analytics = view();
    // duckdb_settings() has a VARIANT column; the query used to fail on it.
    let batches = analytics.query_sql("SELECT * FROM duckdb_settings()").expect("settings");
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(rows > 100, "{rows} settings");
    assert!(text_column_notes(&batches).iter().any(|n| n.contains("VARIANT")));
    assert_eq!(table_lines(&batches).expect("table").len(), rows + 3);
    assert_eq!(csv_lines(&batches).expect("csv").len(), rows + 1);
    let json = batches_to_json(&batches).expect("json");
    let external = json
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == "enable_external_access")
        .expect("the setting");
    assert_eq!(external["value"], "false");
    // Columns named alike keep their names apart, the text cast keeps every name.
    let batches =
        analytics.query_sql("SELECT 1 AS a, 2 AS a, 3::VARIANT AS a").expect("duplicate names");
    let names: Vec<String> =
        batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["a", "a_1", "a_2"]);
    assert_eq!(batches_to_json(&batches).expect("json"), json!([{"a": 1, "a_1": 2, "a_2": "3"}]));
}
