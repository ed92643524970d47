//! The request series as Prometheus families (`http_requests_total`,
//! `http_request_duration_seconds`, `http_response_body_bytes_total`), encoded at each scrape.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::metrics::series::{Series, Shared};

/// Encodes the request series at scrape time.
#[derive(Clone)]
pub(super) struct RequestCollector(pub(super) &'static Shared);

impl fmt::Debug for RequestCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestCollector")
    }
}

impl Collector for RequestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let shared = &self.0;
        let mut all: Vec<Arc<Series>> = shared
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flatten()
            .cloned()
            .collect();
        all.sort_by(|a, b| (&a.route, a.method, a.status).cmp(&(&b.route, b.method, b.status)));
        struct Snapshot {
            labels: [(&'static str, String); 3],
            counts: Vec<(f64, u64)>,
            count: u64,
            sum: f64,
            bytes: u64,
        }
        let snaps: Vec<Snapshot> = all
            .iter()
            .map(|s| {
                let counts: Vec<(f64, u64)> = shared
                    .buckets
                    .iter()
                    .copied()
                    .chain(std::iter::once(f64::INFINITY))
                    .zip(s.buckets.iter().map(|c| c.load(Ordering::Relaxed)))
                    .collect();
                Snapshot {
                    labels: [
                        ("method", s.method.to_owned()),
                        ("route", s.route.to_string()),
                        ("status", s.status.to_string()),
                    ],
                    count: counts.iter().map(|c| c.1).sum(),
                    counts,
                    sum: s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
                    bytes: s.body_bytes.load(Ordering::Relaxed),
                }
            })
            .collect();

        let mut family = encoder.encode_descriptor(
            "http_requests",
            "HTTP responses sent, by method, route template and status.",
            None,
            MetricType::Counter,
        )?;
        for s in &snaps {
            ConstCounter::new(s.count).encode(family.encode_family(&s.labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "Time from the request to the response head, by method, route template and status.",
            None,
            MetricType::Histogram,
        )?;
        for s in &snaps {
            family
                .encode_family(&s.labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    s.sum, s.count, &s.counts, None,
                )?;
        }
        let mut family = encoder.encode_descriptor(
            "http_response_body_bytes",
            "Response body bytes sent, by method, route template and status.",
            None,
            MetricType::Counter,
        )?;
        for s in &snaps {
            ConstCounter::new(s.bytes).encode(family.encode_family(&s.labels)?)?;
        }
        Ok(())
    }
}
