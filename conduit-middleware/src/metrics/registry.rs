//! [`MetricsRegistry`]: the app's one Prometheus registry, and its exposition in the
//! Prometheus text format (0.0.4) and OpenMetrics 1.0.

use std::fmt;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::registry::{Metric, Registry};

use crate::metrics::callback::{Callback, Read};

/// A shared Prometheus registry: the middleware's metrics and any others, served by
/// [`endpoint`](Self::endpoint). Cloning shares it.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry whose metric names all start with `prefix_`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Registry::with_prefix(prefix))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a metric (a counter, gauge, histogram or family from [`prometheus_client`]).
    /// Counters get the `_total` suffix in the exposition.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock().register(name, help, metric);
    }

    /// Register a collector, asked for its metrics at each scrape (for values that live
    /// elsewhere, such as a pool's statistics).
    pub fn register_collector(&self, collector: impl Collector) {
        self.lock().register_collector(Box::new(collector));
    }

    /// A counter whose value `read` gives at each scrape, for a count kept elsewhere (a hub's
    /// slow-consumer counters, a pool's waits). `name` without `_total`: the exposition adds it.
    ///
    /// ```
    /// use conduit_middleware::MetricsRegistry;
    ///
    /// let registry = MetricsRegistry::new();
    /// registry.counter_fn("jobs_done", "Jobs finished.", || 42);
    /// assert!(registry.encode().contains("jobs_done_total 42"));
    /// ```
    pub fn counter_fn(
        &self,
        name: &str,
        help: &str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        self.register_collector(Callback {
            name: name.to_owned(),
            help: help.to_owned(),
            read: Read::Counter(Box::new(read)),
        });
    }

    /// A gauge whose value `read` gives at each scrape (connections in use, queue lengths).
    ///
    /// ```
    /// use conduit_middleware::MetricsRegistry;
    ///
    /// let registry = MetricsRegistry::new();
    /// registry.gauge_fn("workers_busy", "Workers busy now.", || 3);
    /// assert!(registry.encode().contains("workers_busy 3"));
    /// ```
    pub fn gauge_fn(&self, name: &str, help: &str, read: impl Fn() -> i64 + Send + Sync + 'static) {
        self.register_collector(Callback {
            name: name.to_owned(),
            help: help.to_owned(),
            read: Read::Gauge(Box::new(read)),
        });
    }

    /// Anything else [`Registry`] offers (sub-registries with a prefix or constant labels),
    /// under the registry's lock.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.lock())
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    ///
    /// [`prometheus_client`] writes OpenMetrics, where a counter family `x` has samples
    /// `x_total`; in 0.0.4 the `# HELP`/`# TYPE` lines name the samples themselves, so they are
    /// renamed to `x_total` here (as Prometheus' Go client does), and `# UNIT` lines (not part
    /// of 0.0.4) are left out. Strict 0.0.4 parsers then see typed counters.
    pub fn encode(&self) -> String {
        to_prometheus_text(&self.encode_openmetrics_body())
    }

    /// Every metric in the OpenMetrics 1.0 text format (ends with `# EOF`).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = self.encode_openmetrics_body();
        prometheus_client::encoding::text::encode_eof(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn encode_openmetrics_body(&self) -> String {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode_registry(&mut out, &self.lock())
            .expect("writing to a String cannot fail");
        out
    }
}

/// Rename counter families' `# HELP`/`# TYPE` lines to their `_total` samples and drop
/// `# UNIT` lines: OpenMetrics text as Prometheus 0.0.4 text.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_renamed_for_prometheus_text() {
        let om = "# HELP a_seconds Help.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
                  a_seconds_sum 1\n# HELP jobs Jobs done.\n# TYPE jobs counter\njobs_total 3\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_seconds Help.\n# TYPE a_seconds histogram\na_seconds_sum 1\n\
             # HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3\n"
        );
    }
}
