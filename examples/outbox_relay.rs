//! An outbox relay: forwards every order event the store makes durable to an HTTP
//! endpoint, each at least once, resuming after a crash from its durable consumer
//! position. Each request carries an idempotency key, `<LSN>-<index>` (the event's
//! frame and its place in it: unique in the log), so the receiver keeps each event once
//! however often it arrives.
//!
//! The endpoint here is a loopback HTTP server that fails one request in seven (503),
//! so the relay retries; the relay crashes once in the middle (after delivering, before
//! acknowledging), and its second run delivers again what the first had not
//! acknowledged. In the end the receiver holds every event of the log exactly once.
//!
//! ```text
//! cargo run --release --example outbox_relay [ORDERS]     (default 2,000)
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use orderlog::feed::{FeedItem, Filter};
use orderlog::{Event, Lsn, Order, OrderStatus, OrderStore, StoreOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The relay's consumer name.
const CONSUMER: &str = "outbox";

/// What the receiver got: each idempotency key once with its body, and how many
/// requests repeated a key already kept.
#[derive(Default)]
struct Received {
    events: BTreeMap<String, String>,
    duplicates: u64,
    requests: u64,
}

async fn receive(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let mut received = received.lock().unwrap_or_else(|p| p.into_inner());
    received.requests += 1;
    if received.requests % 7 == 0 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    match received.events.get(key) {
        Some(kept) if *kept == body => received.duplicates += 1,
        Some(_) => return StatusCode::CONFLICT,
        None => {
            received.events.insert(key.to_owned(), body);
        }
    }
    StatusCode::OK
}

/// Starts the loopback receiver on a runtime of its own; returns its address.
fn start_receiver(received: Arc<Mutex<Received>>) -> Result<SocketAddr, Error> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/events", post(receive)).with_state(received);
    std::thread::spawn(move || runtime.block_on(async { axum::serve(listener, app).await }));
    Ok(addr)
}

/// Posts one event until the endpoint takes it (2xx), backing off between tries.
fn deliver(agent: &ureq::Agent, url: &str, key: &str, body: &str) -> Result<(), Error> {
    let mut backoff = Duration::from_millis(1);
    for _ in 0..20 {
        let sent = agent
            .post(url)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .send(body);
        match sent {
            Ok(response) if response.status().is_success() => return Ok(()),
            // A refusal or a transport error: try again (at-least-once).
            _ => std::thread::sleep(backoff),
        }
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
    Err(format!("the endpoint refused event {key} 20 times").into())
}

/// The event as the relay sends it.
fn body(lsn: Lsn, index: u32, e: &Event) -> String {
    format!(
        r#"{{"lsn":{lsn},"index":{index},"order_id":{},"kind":"{}","timestamp_ms":{}}}"#,
        e.order_id,
        e.kind_name(),
        e.timestamp_ms
    )
}

/// Relays events until the consumer's position reaches `until`; with `crash_after`, stops
/// after delivering that many events without acknowledging the last of them.
fn relay(
    store: &OrderStore,
    url: &str,
    until: Lsn,
    crash_after: Option<u64>,
) -> Result<u64, Error> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let consumer = store.consumer(CONSUMER)?;
    let mut feed = consumer.subscribe(Filter::all())?;
    let (mut delivered, mut last_ack) = (0u64, Instant::now());
    while feed.delivered_lsn() < until {
        let Some(item) = feed.recv_timeout(Duration::from_millis(50))? else { continue };
        let FeedItem::Batch(batch) = item else {
            return Err("the relay's position was compacted away (it never lags here)".into());
        };
        for e in &batch.events {
            let key = format!("{}-{}", batch.lsn, e.index);
            deliver(&agent, url, &key, &body(batch.lsn, e.index, &e.event))?;
            delivered += 1;
            if crash_after.is_some_and(|n| delivered >= n) {
                return Ok(delivered);
            }
        }
        // Acknowledge every 20 ms (one synced write each), not every batch.
        if last_ack.elapsed() >= Duration::from_millis(20) {
            consumer.ack(feed.delivered_lsn())?;
            last_ack = Instant::now();
        }
    }
    consumer.ack(feed.delivered_lsn())?;
    Ok(delivered)
}

/// The whole story; returns (events in the log, events received, duplicates).
fn run(orders: u64, dir: &std::path::Path) -> Result<(u64, u64, u64), Error> {
    let started = Instant::now();
    let store = OrderStore::open(dir, StoreOptions::default())?;
    let received = Arc::new(Mutex::new(Received::default()));
    let url = format!("http://{}/events", start_receiver(Arc::clone(&received))?);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || -> Result<(), Error> {
            for id in 1..=orders {
                let order =
                    Order::builder(id).customer(id % 50).product(9).quantity(1).unit_price(5.0);
                store.apply(Event::create(order.build()?))?;
                if id % 3 == 0 {
                    store.apply_batch(&[
                        Event::set_status(id, OrderStatus::Confirmed),
                        Event::set_status(id, OrderStatus::Shipped),
                    ])?;
                }
            }
            Ok(())
        })
    };
    // The first run crashes part-way; the second resumes from the durable position.
    let first = relay(&store, &url, u64::MAX, Some(orders / 2))?;
    writer.join().map_err(|_| "the writer panicked")??;
    let end = store.durable_lsn();
    let second = relay(&store, &url, end, None)?;
    let events = orders + 2 * (orders / 3);
    let got = received.lock().unwrap_or_else(|p| p.into_inner());
    let (kept, duplicates) = (got.events.len() as u64, got.duplicates);
    if kept != events {
        return Err(format!("the receiver kept {kept} of {events} events").into());
    }
    println!(
        "outbox relay: {events} events relayed ({first} before the crash, {second} after it, {duplicates} delivered twice and kept once, {} requests with retries); {:.1} s",
        got.requests,
        started.elapsed().as_secs_f64()
    );
    drop(got);
    store.close()?;
    Ok((events, kept, duplicates))
}

fn main() -> Result<(), Error> {
    let orders = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 2_000,
    };
    let dir = tempfile::tempdir()?;
    run(orders, dir.path())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_event_reaches_the_endpoint_once_after_a_crash_and_retries() {
        let dir = tempfile::tempdir().expect("dir");
        let (events, kept, duplicates) = super::run(600, dir.path()).expect("the relay");
        assert_eq!(kept, events);
        // The crash left events delivered but not acknowledged: they came again.
        assert!(duplicates > 0, "no event was delivered twice");
    }
}
