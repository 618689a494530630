//! Prometheus metrics, served on `/metrics`. Labels never carry a secret or an object name.

use std::{future::Future, sync::LazyLock, time::Instant};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub operation: &'static str,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KindLabels, Histogram>,
    in_flight: Family<KindLabels, Gauge>,
    backend_requests: Family<BackendLabels, Counter>,
    backend_seconds: Family<OperationLabels, Histogram>,
    pub rotations: Counter,
    pub regenerations: Counter,
}

fn seconds_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("oauth_operator");
    let m = Metrics {
        reconciles: Family::default(),
        reconcile_seconds: Family::new_with_constructor(seconds_histogram),
        in_flight: Family::default(),
        backend_requests: Family::default(),
        backend_seconds: Family::new_with_constructor(seconds_histogram),
        rotations: Counter::default(),
        regenerations: Counter::default(),
        registry: Registry::default(),
    };
    registry.register("reconciles", "Reconcile passes by kind and result", m.reconciles.clone());
    registry.register("reconcile_duration_seconds", "Duration of reconcile passes", m.reconcile_seconds.clone());
    registry.register(
        "reconciles_in_flight",
        "Reconcile passes running now (the work queue's busy part)",
        m.in_flight.clone(),
    );
    registry.register(
        "backend_requests",
        "Backend API requests by operation and HTTP status",
        m.backend_requests.clone(),
    );
    registry.register("backend_request_duration_seconds", "Latency of backend API requests", m.backend_seconds.clone());
    registry.register("secret_rotations", "Client secrets rotated on request", m.rotations.clone());
    registry.register(
        "secret_regenerations",
        "Credentials Secrets regenerated after deletion or edit",
        m.regenerations.clone(),
    );
    Metrics { registry, ..m }
});

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The text exposition of every metric.
pub fn render() -> String {
    let mut out = String::new();
    encode(&mut out, &METRICS.registry).expect("writing to a String cannot fail");
    out
}

/// Runs one reconcile pass of `kind`, counting it by result and timing it.
pub async fn reconcile<T, E>(
    kind: &'static str,
    label: impl Fn(&E) -> &'static str,
    pass: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let labels = KindLabels { kind };
    METRICS.in_flight.get_or_create(&labels).inc();
    let started = Instant::now();
    let result = pass.await;
    METRICS.in_flight.get_or_create(&labels).dec();
    METRICS.reconcile_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    let result_label = match &result {
        Ok(_) => "ok",
        Err(e) => label(e),
    };
    METRICS.reconciles.get_or_create(&ReconcileLabels { kind, result: result_label }).inc();
    result
}

/// Records one backend request; `status` is the HTTP status, or `error` without a response.
pub fn backend_request(operation: &'static str, status: Option<u16>, started: Instant) {
    let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
    METRICS.backend_requests.get_or_create(&BackendLabels { operation, status }).inc();
    METRICS.backend_seconds.get_or_create(&OperationLabels { operation }).observe(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_and_requests_are_exposed() {
        let _ = reconcile("testkind", |_: &()| "failed", async { Err::<(), ()>(()) }).await;
        backend_request("test_op", Some(200), Instant::now());
        metrics().rotations.inc();
        let text = render();
        assert!(text.contains(r#"oauth_operator_reconciles_total{kind="testkind",result="failed"} 1"#), "{text}");
        assert!(text.contains(r#"oauth_operator_backend_requests_total{operation="test_op",status="200"} 1"#));
        assert!(text.contains("oauth_operator_reconcile_duration_seconds_bucket"));
        assert!(text.contains("oauth_operator_secret_rotations_total"));
    }
}
