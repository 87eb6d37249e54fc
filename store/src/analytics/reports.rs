//! The three standard reports (revenue by status, top customers, monthly trends), as
//! typed rows.
//!
//! Each groups by byte codes (status as UTINYINT) and names the few result rows
//! afterwards, and runs as a delta plan (see `delta`), so a report on a handle costs what
//! the same query on the Parquet files costs plus work in proportion to the tail.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, UInt8Type, UInt64Type};

use super::{Analytics, AnalyticsError};
use crate::domain::OrderStatus;

/// One row of [`Analytics::revenue_by_status`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatusRevenue {
    /// The status.
    pub status: OrderStatus,
    /// Orders in that status.
    pub orders: u64,
    /// Sum of their `total_amount`.
    pub revenue: f64,
}

/// One row of [`Analytics::top_customers`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerTotal {
    /// The customer.
    pub customer_id: u64,
    /// The customer's orders.
    pub order_count: u64,
    /// Sum of their `total_amount`.
    pub total_spent: f64,
}

/// One row of [`Analytics::monthly_trends`]: a calendar month (UTC) of `order_timestamp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonthTrend {
    /// The year.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: u32,
    /// Orders placed in that month.
    pub order_count: u64,
    /// Sum of their `total_amount`.
    pub revenue: f64,
    /// Mean `total_amount`.
    pub avg_order_value: f64,
}

/// `SELECT status, COUNT(*), SUM(total_amount) ... GROUP BY status` over `table` (a
/// validated, quoted identifier or a view name of the store's), largest revenue first.
pub fn revenue_by_status_sql(table: &str) -> String {
    format!(
        "SELECT status, COUNT(*) AS orders, SUM(total_amount) AS revenue FROM {table} \
         GROUP BY status ORDER BY revenue DESC, status"
    )
}

/// The customers with the largest total spent (ties by customer id); `?` is the limit.
pub fn top_customers_sql(table: &str) -> String {
    format!(
        "SELECT customer_id, COUNT(*) AS order_count, SUM(total_amount) AS total_spent \
         FROM {table} GROUP BY customer_id ORDER BY total_spent DESC, customer_id LIMIT ?"
    )
}

/// Orders, revenue and mean order value per calendar month (UTC) of `order_timestamp`
/// (seconds since the epoch).
pub fn monthly_trends_sql(table: &str) -> String {
    format!(
        "SELECT year(ts)::INTEGER AS year, month(ts)::INTEGER AS month, \
         COUNT(*) AS order_count, SUM(total_amount) AS revenue, \
         AVG(total_amount) AS avg_order_value \
         FROM (SELECT make_timestamp(order_timestamp::BIGINT * 1000000) AS ts, total_amount \
               FROM {table}) GROUP BY ALL ORDER BY year, month"
    )
}

/// A report as a delta plan over the handle's three parts: `keys` grouped with
/// `n` (orders) and `s` (sum of `total_amount`) over the snapshot's Parquet files, minus
/// the same over `stale` (the snapshot rows of orders touched since), plus the same over
/// `tail` (their current rows), re-aggregated. Equal to grouping `orders_raw`, without
/// the anti-join `orders_raw` needs: the snapshot part costs what the same query on the
/// Parquet files costs, and the other two are as large as the tail.
fn delta(keys: &str, names: &str) -> String {
    format!(
        "SELECT {names}, SUM(n)::BIGINT AS n, SUM(s) AS s FROM (
             SELECT {keys}, COUNT(*) AS n, SUM(total_amount) AS s FROM snapshot_orders GROUP BY ALL
             UNION ALL
             SELECT {keys}, -COUNT(*) AS n, -SUM(total_amount) AS s FROM stale GROUP BY ALL
             UNION ALL
             SELECT {keys}, COUNT(*) AS n, SUM(total_amount) AS s FROM tail GROUP BY ALL)
         GROUP BY ALL HAVING SUM(n) > 0"
    )
}

/// [`revenue_by_status_sql`] as a delta plan.
fn revenue_by_status_delta() -> String {
    format!(
        "SELECT status, n AS orders, s AS revenue FROM ({}) ORDER BY revenue DESC, status",
        delta("status", "status")
    )
}

/// [`top_customers_sql`] as a delta plan; `?` is the limit.
fn top_customers_delta() -> String {
    format!(
        "SELECT customer_id, n AS order_count, s AS total_spent FROM ({}) \
         ORDER BY total_spent DESC, customer_id LIMIT ?",
        delta("customer_id", "customer_id")
    )
}

/// [`monthly_trends_sql`] as a delta plan.
fn monthly_trends_delta() -> String {
    let ts = "make_timestamp(order_timestamp::BIGINT * 1000000)";
    format!(
        "SELECT year, month, n AS order_count, s AS revenue, s / n AS avg_order_value FROM ({}) \
         ORDER BY year, month",
        delta(
            &format!("year({ts})::INTEGER AS year, month({ts})::INTEGER AS month"),
            "year, month"
        )
    )
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, AnalyticsError> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| AnalyticsError::Result(format!("no column {name}")))
}

fn u64_at(array: &dyn Array, row: usize) -> Result<u64, AnalyticsError> {
    if let Some(a) = array.as_primitive_opt::<Int64Type>() {
        return u64::try_from(a.value(row))
            .map_err(|_| AnalyticsError::Result(format!("negative count {}", a.value(row))));
    }
    if let Some(a) = array.as_primitive_opt::<UInt64Type>() {
        return Ok(a.value(row));
    }
    Err(AnalyticsError::Result(format!("expected an integer, got {}", array.data_type())))
}

fn f64_at(array: &dyn Array, row: usize) -> Result<f64, AnalyticsError> {
    array.as_primitive_opt::<Float64Type>().map(|a| a.value(row)).ok_or_else(|| {
        AnalyticsError::Result(format!("expected a double, got {}", array.data_type()))
    })
}

fn i32_at(array: &dyn Array, row: usize) -> Result<i32, AnalyticsError> {
    array.as_primitive_opt::<Int32Type>().map(|a| a.value(row)).ok_or_else(|| {
        AnalyticsError::Result(format!("expected an INTEGER, got {}", array.data_type()))
    })
}

/// Every row of every batch, mapped by `f`.
fn rows<T>(
    batches: &[RecordBatch],
    mut f: impl FnMut(&RecordBatch, usize) -> Result<T, AnalyticsError>,
) -> Result<Vec<T>, AnalyticsError> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            out.push(f(batch, row)?);
        }
    }
    Ok(out)
}

impl Analytics {
    /// The plain query over the snapshot when nothing was touched after it (the delta
    /// parts are empty, and re-aggregating would only add work), else the delta plan.
    fn plan(&self, plain: fn(&str) -> String, delta: fn() -> String) -> String {
        if self.info.touched == 0 { plain("snapshot_orders") } else { delta() }
    }

    /// Orders and revenue per status, largest revenue first. Statuses with no order are
    /// absent.
    pub fn revenue_by_status(&self) -> Result<Vec<StatusRevenue>, AnalyticsError> {
        let batches = self.run(&self.plan(revenue_by_status_sql, revenue_by_status_delta), [])?;
        rows(&batches, |b, r| {
            let status = column(b, "status")?
                .as_primitive_opt::<UInt8Type>()
                .map(|a| a.value(r))
                .ok_or_else(|| AnalyticsError::Result("status is not UTINYINT".into()))?;
            Ok(StatusRevenue {
                status: OrderStatus::try_from(status)
                    .map_err(|e| AnalyticsError::Result(e.to_string()))?,
                orders: u64_at(column(b, "orders")?, r)?,
                revenue: f64_at(column(b, "revenue")?, r)?,
            })
        })
    }

    /// The `limit` customers with the largest total spent, ties broken by customer id
    /// (the limit is bound as a parameter).
    pub fn top_customers(&self, limit: usize) -> Result<Vec<CustomerTotal>, AnalyticsError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let batches = self.run(&self.plan(top_customers_sql, top_customers_delta), [limit])?;
        rows(&batches, |b, r| {
            Ok(CustomerTotal {
                customer_id: u64_at(column(b, "customer_id")?, r)?,
                order_count: u64_at(column(b, "order_count")?, r)?,
                total_spent: f64_at(column(b, "total_spent")?, r)?,
            })
        })
    }

    /// Orders, revenue and mean order value per calendar month (UTC) of
    /// `order_timestamp` (seconds since the epoch), oldest month first.
    pub fn monthly_trends(&self) -> Result<Vec<MonthTrend>, AnalyticsError> {
        let batches = self.run(&self.plan(monthly_trends_sql, monthly_trends_delta), [])?;
        rows(&batches, |b, r| {
            let month = i32_at(column(b, "month")?, r)?;
            Ok(MonthTrend {
                year: i32_at(column(b, "year")?, r)?,
                month: u32::try_from(month)
                    .map_err(|_| AnalyticsError::Result(format!("month {month}")))?,
                order_count: u64_at(column(b, "order_count")?, r)?,
                revenue: f64_at(column(b, "revenue")?, r)?,
                avg_order_value: f64_at(column(b, "avg_order_value")?, r)?,
            })
        })
    }
}
