//! Prometheus metrics at `/metrics`.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub projection_lag: IntGaugeVec,
    pub log_head: IntGauge,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(Opts::new("opspilot_http_requests_total", "HTTP requests by method, path and status"), &["method", "path", "status"]).expect("metric");
        let http_duration = HistogramVec::new(HistogramOpts::new("opspilot_http_request_seconds", "HTTP request latency"), &["method", "path"]).expect("metric");
        let projection_lag = IntGaugeVec::new(Opts::new("opspilot_projection_lag_events", "Events appended but not yet applied, per projection"), &["projection"]).expect("metric");
        let log_head = IntGauge::new("opspilot_event_log_head", "Position of the last appended event").expect("metric");
        for m in [Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>, Box::new(http_duration.clone()), Box::new(projection_lag.clone()), Box::new(log_head.clone())] {
            registry.register(m).expect("unique metric");
        }
        Metrics { registry, http_requests, http_duration, projection_lag, log_head }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("prometheus encodes");
        String::from_utf8(buf).expect("prometheus text is utf-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
