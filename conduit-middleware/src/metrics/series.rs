//! The numbers of one label set (method, route template, status) and how a request finds
//! them: a per-thread cache in front of the shared map, so the hot path takes no lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use conduit_core::MatchedPath;
use http::{Extensions, Method};
use prometheus_client::metrics::gauge::Gauge;

/// The `route` label of requests no route matched (404, 405).
pub const UNMATCHED: &str = "unmatched";

/// One label set's numbers.
pub(super) struct Series {
    pub(super) id: u64,
    pub(super) method: &'static str,
    pub(super) status: u16,
    pub(super) route: Box<str>,
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    pub(super) buckets: Box<[AtomicU64]>,
    pub(super) sum_nanos: AtomicU64,
    pub(super) body_bytes: AtomicU64,
}

impl Series {
    fn is(&self, id: u64, method: &str, status: u16, route: &str) -> bool {
        // Method labels come from one static table, so the pointers usually settle it.
        self.id == id
            && self.status == status
            && (std::ptr::eq(self.method, method) || self.method == method)
            && &*self.route == route
    }
}

pub(super) type SeriesMap = HashMap<u64, Vec<Arc<Series>>, foldhash::fast::FixedState>;

pub(super) struct Shared {
    pub(super) id: u64,
    pub(super) buckets: Box<[f64]>,
    pub(super) series: RwLock<SeriesMap>,
    pub(super) in_flight: Gauge,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Per worker thread: label-set hash → series, so the hot path takes no lock.
    static CACHE: RefCell<SeriesMap> = RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::default()));
}

fn key_hash(id: u64, method: &str, status: u16, route: &str) -> u64 {
    let mut h = foldhash::fast::FixedState::default().build_hasher();
    id.hash(&mut h);
    method.hash(&mut h);
    status.hash(&mut h);
    route.hash(&mut h);
    h.finish()
}

impl Shared {
    /// Record one response: latency since `start`, and `body_bytes` when known. Returns the
    /// series only when the caller needs it (a streamed body, `body_bytes` = `None`), so the
    /// common case touches no reference count.
    pub(super) fn record(
        &self,
        method: &'static str,
        status: u16,
        route: &str,
        start: Instant,
        body_bytes: Option<u64>,
    ) -> Option<Arc<Series>> {
        let hash = key_hash(self.id, method, status, route);
        let hit = CACHE.with(|c| {
            let cache = c.borrow();
            let series = cache
                .get(&hash)?
                .iter()
                .find(|s| s.is(self.id, method, status, route))?;
            Some(self.observe(series, start, body_bytes))
        });
        if let Some(needed) = hit {
            return needed;
        }
        let series = self.series_slow(hash, method, status, route);
        CACHE.with(|c| c.borrow_mut().entry(hash).or_default().push(series.clone()));
        self.observe(&series, start, body_bytes)
    }

    #[cold]
    fn series_slow(
        &self,
        hash: u64,
        method: &'static str,
        status: u16,
        route: &str,
    ) -> Arc<Series> {
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(hash).or_default();
        if let Some(s) = list.iter().find(|s| s.is(self.id, method, status, route)) {
            return s.clone();
        }
        let series = Arc::new(Series {
            id: self.id,
            method,
            status,
            route: route.into(),
            buckets: (0..=self.buckets.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_nanos: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
        });
        list.push(series.clone());
        series
    }

    fn observe(
        &self,
        series: &Arc<Series>,
        start: Instant,
        body_bytes: Option<u64>,
    ) -> Option<Arc<Series>> {
        let elapsed = start.elapsed();
        let secs = elapsed.as_secs_f64();
        let i = self
            .buckets
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.buckets.len());
        series.buckets[i].fetch_add(1, Ordering::Relaxed);
        series
            .sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        match body_bytes {
            Some(n) => {
                series.body_bytes.fetch_add(n, Ordering::Relaxed);
                None
            }
            None => Some(series.clone()),
        }
    }
}

pub(super) fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The route template the router recorded, if any.
pub(super) fn matched_route(ext: &Extensions) -> Option<&str> {
    ext.get::<MatchedPath>().map(|m| m.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
