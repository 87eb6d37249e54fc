//! An HTTP order service embedding the store: the shape of a real service on tokio.
//!
//! `cargo run --release --example order_service -- [DIR] [ADDR]` (default: a directory
//! `orders-service` and `127.0.0.1:8080`), then for example:
//!
//! ```text
//! curl -XPOST localhost:8080/orders -H 'content-type: application/json' \
//!      -d '{"order_id":1,"customer_id":7,"product_id":3,"quantity":2,"unit_price":9.5}'
//! curl -XPOST localhost:8080/orders/1/status -H 'content-type: application/json' \
//!      -d '{"status":"Confirmed"}'
//! curl localhost:8080/orders/1
//! curl localhost:8080/reports/revenue-by-status
//! ```
//!
//! - `POST /orders` answers `201 Created` only once the order is durable (the store's
//!   default sync policy, `Always`: the write's group commit has synced it), so a client
//!   that saw the 201 never loses the order. An invalid order (a zero quantity, a negative
//!   price) is `422 Unprocessable Entity`, a refused one (a duplicate id) `409 Conflict`,
//!   each with the reason, and nothing is written.
//! - `POST /orders/{id}/status` changes the status if the transition is legal (`409`
//!   otherwise); `GET /orders/{id}` reads it; `GET /reports/revenue-by-status` runs the
//!   report in DuckDB over the snapshots and the live tail.
//! - Nothing blocks a runtime worker: writes use `apply_async` (waiting for the lock or a
//!   new log segment on tokio's blocking pool), the report `analytics_async`.
//! - Ctrl-C (or the shutdown future a test passes) stops taking requests, lets those in
//!   flight finish, then closes the store (`close_async`: compactor stopped, log synced).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orderlog::{DomainError, Event, Order, OrderStatus, OrderStore, StoreError, StoreOptions};
use serde::Deserialize;
use serde_json::{Value, json};

/// The body of `POST /orders`.
#[derive(Debug, Deserialize)]
struct NewOrder {
    order_id: u64,
    customer_id: u64,
    product_id: u64,
    quantity: u32,
    unit_price: f64,
}

/// The body of `POST /orders/{id}/status`.
#[derive(Debug, Deserialize)]
struct NewStatus {
    status: String,
}

/// An error as an HTTP answer: an invalid order is the client's (422), a refused
/// mutation too (409), anything else the server's (500; the log refuses writes after a
/// failed sync until reopened).
enum ApiError {
    Invalid(DomainError),
    Store(StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = match self {
            ApiError::Invalid(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            ApiError::Store(e @ StoreError::Mutation(_)) => (StatusCode::CONFLICT, e.to_string()),
            ApiError::Store(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        (status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Invalid(e)
    }
}

fn order_json(order: &Order) -> Value {
    json!({
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "unit_price": order.unit_price,
        "total_amount": order.total_amount(),
        "status": order.status.name(),
        "payment_method": order.payment_method.name(),
    })
}

async fn create(
    State(store): State<OrderStore>,
    Json(new): Json<NewOrder>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let order = Order::builder(new.order_id)
        .customer(new.customer_id)
        .product(new.product_id)
        .quantity(new.quantity)
        .unit_price(new.unit_price)
        .build()?;
    // Returns once the batch is durable under the store's sync policy.
    let lsn = store.apply_async(Event::create(order)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "order_id": new.order_id, "lsn": lsn }))))
}

async fn read(State(store): State<OrderStore>, Path(id): Path<u64>) -> Response {
    match store.get(id) {
        Some(order) => Json(order_json(&order)).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no order {id}") })))
            .into_response(),
    }
}

async fn set_status(
    State(store): State<OrderStore>,
    Path(id): Path<u64>,
    Json(body): Json<NewStatus>,
) -> Result<Response, ApiError> {
    let Some(status) = OrderStatus::ALL.into_iter().find(|s| s.name() == body.status) else {
        let error = json!({ "error": format!("unknown status {:?}", body.status) });
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(error)).into_response());
    };
    let lsn = store.apply_async(Event::set_status(id, status)).await?;
    Ok(Json(json!({ "order_id": id, "status": status.name(), "lsn": lsn })).into_response())
}

async fn revenue_by_status(State(store): State<OrderStore>) -> Result<Json<Value>, ApiError> {
    let view = store.analytics_async().await?;
    let rows = tokio::task::spawn_blocking(move || view.revenue_by_status())
        .await
        .map_err(|e| ApiError::Store(StoreError::Thread(e.to_string())))?
        .map_err(StoreError::from)?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "status": r.status.name(), "orders": r.orders, "revenue": r.revenue }))
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// The service's routes over `store`.
fn router(store: OrderStore) -> Router {
    Router::new()
        .route("/orders", post(create))
        .route("/orders/{id}", get(read))
        .route("/orders/{id}/status", post(set_status))
        .route("/reports/revenue-by-status", get(revenue_by_status))
        .with_state(store)
}

/// Serves `store` on `listener` until `shutdown` completes, then closes the store.
async fn serve(
    store: OrderStore,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    axum::serve(listener, router(store.clone())).with_graceful_shutdown(shutdown).await?;
    // Every request has finished: sync and close the log, stop the compactor.
    store.close_async().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "orders-service".into()));
    let addr: SocketAddr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into()).parse()?;
    let store = OrderStore::open_async(dir.clone(), StoreOptions::default()).await?;
    let report = store.open_report();
    println!(
        "store {}: {} orders recovered in {:?}; serving on http://{addr} (Ctrl-C stops)",
        dir.display(),
        store.len(),
        report.elapsed
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let ctrl_c = async {
        // If the signal cannot be listened for, serve until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    serve(store, listener, ctrl_c).await?;
    println!("stopped; the store is closed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// One HTTP/1.1 request over a fresh loopback connection: the status and the JSON
    /// body of the answer.
    fn request(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let status = answer[9..12].parse().expect("a status code");
        let json = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }

    #[test]
    fn the_service_answers_over_loopback_and_keeps_what_it_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt
            .block_on(OrderStore::open_async(dir.path().to_path_buf(), StoreOptions::default()))
            .expect("open");
        let listener =
            rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn(serve(store, listener, async {
            let _ = stopped.await;
        }));

        for id in 1..=3u64 {
            let new = json!({ "order_id": id, "customer_id": 7, "product_id": id,
                              "quantity": 2, "unit_price": 10.0 });
            let (code, body) = request(addr, "POST", "/orders", Some(new));
            assert_eq!(code, 201, "{body}");
            assert_eq!(body["order_id"], id);
        }
        let dup = json!({ "order_id": 1, "customer_id": 7, "product_id": 1,
                          "quantity": 1, "unit_price": 1.0 });
        let (code, body) = request(addr, "POST", "/orders", Some(dup));
        assert_eq!(code, 409, "a duplicate id is refused: {body}");
        let zero = json!({ "order_id": 4, "customer_id": 7, "product_id": 1,
                           "quantity": 0, "unit_price": 1.0 });
        let (code, body) = request(addr, "POST", "/orders", Some(zero));
        assert_eq!(code, 422, "a zero quantity is invalid: {body}");
        assert_eq!(request(addr, "GET", "/orders/4", None).0, 404, "nothing written");
        let (code, body) =
            request(addr, "POST", "/orders/1/status", Some(json!({ "status": "Confirmed" })));
        assert_eq!((code, body["status"].as_str()), (200, Some("Confirmed")), "{body}");
        let (code, body) =
            request(addr, "POST", "/orders/2/status", Some(json!({ "status": "Delivered" })));
        assert_eq!(code, 409, "Pending cannot become Delivered: {body}");
        let (code, _) = request(addr, "POST", "/orders/2/status", Some(json!({ "status": "x" })));
        assert_eq!(code, 422);
        let (code, body) = request(addr, "GET", "/orders/1", None);
        assert_eq!((code, body["total_amount"].as_f64()), (200, Some(20.0)), "{body}");
        assert_eq!(request(addr, "GET", "/orders/9", None).0, 404);
        let (code, body) = request(addr, "GET", "/reports/revenue-by-status", None);
        assert_eq!(code, 200, "{body}");
        let orders: u64 =
            body.as_array().expect("rows").iter().map(|r| r["orders"].as_u64().unwrap_or(0)).sum();
        assert_eq!(orders, 3, "{body}");

        // Graceful shutdown closes the store; every acknowledged order is there after.
        stop.send(()).expect("stop");
        rt.block_on(server).expect("join").expect("served");
        let reopened = OrderStore::open(dir.path(), StoreOptions::default()).expect("reopen");
        assert_eq!(reopened.len(), 3);
        assert_eq!(reopened.get(1).map(|o| o.status), Some(OrderStatus::Confirmed));
    }
}
