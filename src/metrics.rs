//! Prometheus metrics, served on `/metrics`. Labels never carry a secret; object names only in
//! the per-Secret age gauges, which an alert on rotation policy needs.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode},
    metrics::{MetricType, counter::Counter, family::Family, gauge::ConstGauge, gauge::Gauge, histogram::Histogram},
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
    pub retirements: Counter,
    ages: Arc<SecretAges>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabels {
    namespace: String,
    name: String,
}

/// When each OAuthClient's secret was issued (Unix seconds) and its `spec.rotation.every`, by
/// `namespace/name`: ages are computed at each scrape, so they grow between passes.
#[derive(Debug, Default)]
struct SecretAges(Mutex<BTreeMap<String, (i64, Option<Duration>)>>);

impl Collector for SecretAges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ages = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = Timestamp::now().as_second();
        let labels = |key: &str| {
            let (namespace, name) = key.split_once('/').unwrap_or(("", key));
            SecretLabels { namespace: namespace.into(), name: name.into() }
        };
        let help = "Age of each OAuthClient's client secret, since it was issued";
        let mut age = encoder.encode_descriptor("secret_age_seconds", help, None, MetricType::Gauge)?;
        for (key, (issued, _)) in &ages {
            ConstGauge::new(now - issued).encode(age.encode_family(&labels(key))?)?;
        }
        let help = "The rotation.every of each OAuthClient that has one: the oldest its secret should get";
        let mut max = encoder.encode_descriptor("secret_max_age_seconds", help, None, MetricType::Gauge)?;
        for (key, (_, every)) in &ages {
            if let Some(every) = every {
                ConstGauge::new(every.as_secs() as i64).encode(max.encode_family(&labels(key))?)?;
            }
        }
        Ok(())
    }
}

/// Records when the secret of the OAuthClient `key` (`namespace/name`) was issued and its
/// rotation period; `None` forgets it (deleted, or nothing issued).
pub fn secret_age(key: &str, issued: Option<Timestamp>, every: Option<Duration>) {
    let mut ages = METRICS.ages.0.lock().unwrap_or_else(|e| e.into_inner());
    match issued {
        Some(issued) => ages.insert(key.to_string(), (issued.as_second(), every)),
        None => ages.remove(key),
    };
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
        retirements: Counter::default(),
        ages: Arc::default(),
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
    registry.register("secret_rotations", "Client secrets rotated (on request or on schedule)", m.rotations.clone());
    registry.register(
        "secret_regenerations",
        "Credentials Secrets regenerated after deletion or edit",
        m.regenerations.clone(),
    );
    registry.register(
        "previous_clients_retired",
        "Clients replaced by a NewClient rotation and deactivated after their overlap",
        m.retirements.clone(),
    );
    registry.register_collector(Box::new(m.ages.clone()));
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

    #[test]
    fn secret_ages_grow_at_each_scrape_and_go_with_their_client() {
        let issued = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(90);
        secret_age("shop/web", Some(issued), Some(Duration::from_secs(3600)));
        let text = render();
        let age = text
            .lines()
            .find_map(|l| l.strip_prefix(r#"oauth_operator_secret_age_seconds{namespace="shop",name="web"} "#))
            .and_then(|v| v.parse::<i64>().ok())
            .expect("an age");
        assert!((90..100).contains(&age), "{age}");
        assert!(text.contains(r#"oauth_operator_secret_max_age_seconds{namespace="shop",name="web"} 3600"#), "{text}");
        secret_age("shop/web", None, None);
        assert!(!render().contains(r#"name="web""#), "forgotten with its client");
    }
}
