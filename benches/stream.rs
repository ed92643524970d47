//! Criterion benchmarks of conduit-stream without the network: a JSON array of 1,000,000 small
//! items streamed through `JsonArray` (frames taken and dropped, as the server would write
//! them) against serializing the same items into one `Vec` with serde_json — the goal is a
//! ratio under 1.5. Also NDJSON, and encoding SSE events.
//!
//! ```sh
//! cargo bench --bench stream
//! ```
//! Memory (flat with the item count) and the 10,000-client SSE fan-out need a real server:
//! `scripts/stream_bench.sh`.
use std::hint::black_box;

use conduit::{Event, JsonArray, Ndjson};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use serde::Serialize;

const N: u64 = 1_000_000;

#[derive(Serialize)]
struct Item {
    id: u64,
    name: String,
}

fn items(n: u64) -> impl Iterator<Item = Item> + Send + Unpin {
    (0..n).map(|id| Item {
        id,
        name: format!("item-{id}"),
    })
}

/// The baseline: the same items, generated the same way, serialized into one `Vec`.
struct AllAtOnce(u64);

impl Serialize for AllAtOnce {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(items(self.0))
    }
}

fn drain(rt: &tokio::runtime::Runtime, body: conduit::Body) -> usize {
    rt.block_on(async move {
        let mut body = body;
        let mut total = 0;
        while let Some(frame) = body.frame().await {
            total += frame.unwrap().into_data().map_or(0, |d| d.len());
        }
        total
    })
}

fn json_array(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = serde_json::to_vec(&AllAtOnce(N)).unwrap().len() as u64;
    let mut g = c.benchmark_group("json_1m_items");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("serde_json_to_vec", |b| {
        b.iter(|| black_box(serde_json::to_vec(&AllAtOnce(N)).unwrap().len()))
    });
    g.bench_function("json_array_stream", |b| {
        b.iter(|| black_box(drain(&rt, JsonArray::from_items(items(N)).into_body())))
    });
    g.bench_function("ndjson_stream", |b| {
        b.iter(|| black_box(drain(&rt, Ndjson::from_items(items(N)).into_body())))
    });
    g.finish();
}

fn sse_event(c: &mut Criterion) {
    c.bench_function("sse_event_build_and_encode", |b| {
        b.iter(|| {
            let ev = Event::default()
                .event("tick")
                .unwrap()
                .id("12345")
                .unwrap()
                .data(black_box("{\"seq\":12345}"));
            black_box(ev.encode().len())
        })
    });
}

criterion_group!(benches, json_array, sse_event);
criterion_main!(benches);
