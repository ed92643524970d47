//! Values that live elsewhere (a pool's statistics, a hub's counters), read at each scrape:
//! [`MetricsRegistry::counter_fn`](crate::metrics::MetricsRegistry::counter_fn) and
//! [`gauge_fn`](crate::metrics::MetricsRegistry::gauge_fn).

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// What the callback's value is.
pub(super) enum Read {
    Counter(Box<dyn Fn() -> u64 + Send + Sync>),
    Gauge(Box<dyn Fn() -> i64 + Send + Sync>),
}

/// One metric whose value a callback gives at scrape time.
pub(super) struct Callback {
    pub(super) name: String,
    pub(super) help: String,
    pub(super) read: Read,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("name", &self.name)
            .finish()
    }
}

impl Collector for Callback {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        match &self.read {
            Read::Counter(f) => {
                let metric =
                    encoder.encode_descriptor(&self.name, &self.help, None, MetricType::Counter)?;
                ConstCounter::new(f()).encode(metric)
            }
            Read::Gauge(f) => {
                let metric =
                    encoder.encode_descriptor(&self.name, &self.help, None, MetricType::Gauge)?;
                ConstGauge::new(f()).encode(metric)
            }
        }
    }
}
