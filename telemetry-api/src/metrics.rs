//! Prometheus metrics, kept in memory and rendered in the text exposition
//! format: request counts and latency histograms per route, and ingested
//! events by result. Hand-written because the service needs three metric
//! families, not a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use weft_telemetry_wire::EventStatus;

use crate::state::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct Metrics {
    http: Mutex<HttpMetrics>,
    events_accepted: AtomicU64,
    events_duplicate: AtomicU64,
    events_rejected: AtomicU64,
}

#[derive(Default)]
struct HttpMetrics {
    /// (method, route, status) → count.
    requests: BTreeMap<(String, String, u16), u64>,
    /// route → latency histogram.
    latency: BTreeMap<String, Histogram>,
}

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += secs;
        self.count += 1;
    }
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, secs: f64) {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        *http.requests.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        http.latency.entry(route.to_owned()).or_default().observe(secs);
    }

    pub fn count_events(&self, status: EventStatus, n: u64) {
        let counter = match status {
            EventStatus::Accepted => &self.events_accepted,
            EventStatus::Duplicate => &self.events_duplicate,
            EventStatus::Rejected => &self.events_rejected,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP weft_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE weft_http_requests_total counter\n");
        for ((method, route, status), count) in &http.requests {
            let _ = writeln!(
                out,
                "weft_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(method),
                escape(route),
            );
        }
        out.push_str("# HELP weft_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE weft_http_request_duration_seconds histogram\n");
        for (route, h) in &http.latency {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i];
                let _ = writeln!(
                    out,
                    "weft_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ =
                writeln!(out, "weft_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "weft_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "weft_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        drop(http);
        out.push_str("# HELP weft_events_ingested_total Events received by ingest, by result.\n");
        out.push_str("# TYPE weft_events_ingested_total counter\n");
        for (result, counter) in [
            ("accepted", &self.events_accepted),
            ("duplicate", &self.events_duplicate),
            ("rejected", &self.events_rejected),
        ] {
            let _ =
                writeln!(out, "weft_events_ingested_total{{result=\"{result}\"}} {}", counter.load(Ordering::Relaxed));
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Middleware: times every request and counts it under its route template
/// (`/v1/me/sessions/{id}`, not the concrete path, so that label values
/// stay few). Unrouted requests count as `unmatched`.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    state.metrics.observe_request(&method, &route, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets() {
        let m = Metrics::default();
        m.observe_request("GET", "/health", 200, 0.002);
        m.observe_request("GET", "/health", 200, 0.2);
        m.count_events(EventStatus::Accepted, 3);
        let text = m.render();
        assert!(text.contains("weft_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 2"));
        assert!(text.contains("weft_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.001\"} 0"));
        assert!(text.contains("weft_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.0025\"} 1"));
        assert!(text.contains("weft_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 2"));
        assert!(text.contains("weft_events_ingested_total{result=\"accepted\"} 3"));
    }
}
