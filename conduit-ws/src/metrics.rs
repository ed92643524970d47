//! Prometheus series of the WebSocket counts (feature `metrics`), registered in
//! conduit-middleware's [`MetricsRegistry`] and read from [`stats`](crate::stats()) at each
//! scrape:
//!
//! | series | labels |
//! | --- | --- |
//! | `websocket_opened_total` | `http`: `1.1` or `2` |
//! | `websocket_open` (gauge) | |
//! | `websocket_closed_total` | `code`: the close code that ended the socket (`1005`: a Close without a code, `1006`: no Close), `other` |
//! | `websocket_protocol_errors_total` | |
//! | `websocket_limit_closes_total` | `limit`: `frame` or `message` |
//! | `websocket_idle_timeouts_total` | |
//! | `websocket_deflate_negotiated_total` | |
//!
//! ```
//! use conduit_middleware::MetricsRegistry;
//!
//! let registry = MetricsRegistry::new();
//! conduit_ws::metrics::register(&registry);
//! let text = registry.encode();
//! assert!(text.contains("websocket_opened_total{http=\"2\"}"));
//! assert!(text.contains("websocket_closed_total{code=\"1009\"}"));
//! ```

use std::fmt;

use conduit_middleware::MetricsRegistry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::stats::{CLOSE_CODES, stats};

/// Register the WebSocket series in `registry` (once per registry).
pub fn register(registry: &MetricsRegistry) {
    registry.register_collector(WsCollector);
}

struct WsCollector;

impl fmt::Debug for WsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WsCollector")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    labelled: &[(&'static str, String, u64)],
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (label, value, n) in labelled {
        let labels = [(*label, value.clone())];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for WsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = stats();
        counter(
            &mut encoder,
            "websocket_opened",
            "WebSockets opened, by the HTTP version they run over.",
            &[
                ("http", "1.1".into(), s.opened_http1),
                ("http", "2".into(), s.opened_http2),
            ],
        )?;
        let open = encoder.encode_descriptor(
            "websocket_open",
            "WebSockets open now.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(s.open()).unwrap_or(i64::MAX)).encode(open)?;
        let mut closed: Vec<(&'static str, String, u64)> = CLOSE_CODES
            .iter()
            .zip(s.closed_by_code)
            .map(|(code, n)| ("code", code.to_string(), n))
            .collect();
        closed.push(("code", "other".into(), s.closed_other));
        counter(
            &mut encoder,
            "websocket_closed",
            "WebSockets ended, by the close code that ended them (1005: a Close without a code, 1006: no Close frame).",
            &closed,
        )?;
        let plain = [
            (
                "websocket_protocol_errors",
                "WebSockets closed for a peer's protocol fault (1002) or invalid UTF-8 (1007).",
                s.protocol_errors,
            ),
            (
                "websocket_idle_timeouts",
                "WebSockets closed by the idle timeout (1001).",
                s.idle_timeouts,
            ),
            (
                "websocket_deflate_negotiated",
                "WebSockets that negotiated permessage-deflate.",
                s.deflate_negotiated,
            ),
        ];
        for (name, help, n) in plain {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(n).encode(metric)?;
        }
        counter(
            &mut encoder,
            "websocket_limit_closes",
            "WebSockets closed with 1009, by the limit crossed.",
            &[
                ("limit", "frame".into(), s.frame_limit_closes),
                ("limit", "message".into(), s.message_limit_closes),
            ],
        )?;
        Ok(())
    }
}
