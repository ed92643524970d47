//! The cost of generating a request id, side by side with the cheapest unique id there is.
//!
//! `random`: [`request_id::generate`], 128 bits from the thread's ChaCha12 generator as 32 hex
//! digits in a shared per-thread chunk. `counter`: a per-process random prefix and a relaxed
//! atomic counter (`3f9a1c2e7b4d5a60-000000000000001a`, 33 bytes) written the same way, which
//! reveals how many requests came before it. Both end in a `HeaderValue`, as the middleware
//! needs. `… x2 threads` runs the same on two threads at once, where a shared counter's cache
//! line moves between cores and the per-thread generator shares nothing.
//!
//! Instructions per id, free of timing noise: with `REQUEST_IDS=N` and `REQUEST_ID_KIND=random`
//! (or `counter`) the binary makes N ids of that kind and exits, so under
//! `valgrind --tool=callgrind` the difference between two counts, divided by their difference in
//! N, is the cost of one id (whatever the optimiser inlined).
use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use conduit_core::http::HeaderValue;
use conduit_middleware::request_id;
use criterion::{Criterion, criterion_group};

thread_local! {
    static IDS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

fn prefix() -> &'static [u8; 17] {
    static PREFIX: OnceLock<[u8; 17]> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let mut out = [b'-'; 17];
        out[..16].copy_from_slice(format!("{:016x}", h.finish()).as_bytes());
        out
    })
}

fn hex8(v: u32) -> [u8; 8] {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    let ascii = x + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10);
    ascii.to_be_bytes()
}

/// A prefix-and-counter id, built like `generate` builds its random one.
fn counter_id() -> HeaderValue {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 33];
    id[..17].copy_from_slice(prefix());
    id[17..25].copy_from_slice(&hex8((n >> 32) as u32));
    id[25..].copy_from_slice(&hex8(n as u32));
    let id = IDS.with(|chunk| {
        let mut chunk = chunk.borrow_mut();
        if chunk.capacity() < 33 {
            *chunk = BytesMut::with_capacity(2048);
        }
        chunk.extend_from_slice(&id);
        chunk.split().freeze()
    });
    HeaderValue::from_maybe_shared(id).expect("hex digits")
}

/// `iters` ids on each of `threads` threads at once; the mean wall time per id of one thread.
fn on_threads(threads: usize, iters: u64, make: fn() -> HeaderValue) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(move || {
                for _ in 0..iters {
                    black_box(make());
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_id");
    g.bench_function("counter", |b| b.iter(counter_id));
    g.bench_function("random", |b| b.iter(request_id::generate));
    g.bench_function("counter x2 threads", |b| {
        b.iter_custom(|iters| on_threads(2, iters, counter_id))
    });
    g.bench_function("random x2 threads", |b| {
        b.iter_custom(|iters| on_threads(2, iters, request_id::generate))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}

fn main() {
    if let Ok(n) = std::env::var("REQUEST_IDS") {
        let n: u64 = n.parse().expect("REQUEST_IDS is a count");
        let make: fn() -> HeaderValue = match std::env::var("REQUEST_ID_KIND").as_deref() {
            Ok("counter") => counter_id,
            _ => request_id::generate,
        };
        for _ in 0..n {
            black_box(make());
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
