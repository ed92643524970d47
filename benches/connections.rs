//! End-to-end connection benches over loopback: ConcurrentRequests (many requests in flight,
//! over several HTTP/1.1 connections or multiplexed on one HTTP/2 connection) and
//! KeepAliveConnections (reusing a connection vs. a new TCP connection per request).
use std::hint::black_box;

use conduit::{Request, Router, get};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod support;
use support::{LoopbackServer, client_runtime, h1, h2, send1, send2};

const IN_FLIGHT: usize = 64;
const H1_CONNECTIONS: usize = 8;

fn app() -> Router {
    Router::new().route("/", get(|_req: Request| async { "Hello, World!" }))
}

fn concurrent(c: &mut Criterion) {
    let server = LoopbackServer::start(app());
    let rt = client_runtime();
    let mut g = c.benchmark_group("concurrent_requests");
    g.throughput(Throughput::Elements(IN_FLIGHT as u64));

    let mut conns: Vec<_> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..H1_CONNECTIONS {
            v.push(h1(server.addr).await);
        }
        v
    });
    g.bench_function(format!("h1_{IN_FLIGHT}_over_{H1_CONNECTIONS}_conns"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = Vec::with_capacity(H1_CONNECTIONS);
                for mut c in conns.drain(..) {
                    tasks.push(tokio::spawn(async move {
                        // HTTP/1.1 has one request in flight per connection: each connection
                        // carries IN_FLIGHT / H1_CONNECTIONS requests back to back.
                        for _ in 0..IN_FLIGHT / H1_CONNECTIONS {
                            c.ready().await.expect("ready");
                            black_box(send1(&mut c, support::get("/")).await);
                        }
                        c
                    }));
                }
                for t in tasks {
                    conns.push(t.await.unwrap());
                }
            })
        })
    });

    let h2conn = rt.block_on(h2(server.addr));
    g.bench_function(format!("h2_{IN_FLIGHT}_streams_one_conn"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = Vec::with_capacity(IN_FLIGHT);
                for _ in 0..IN_FLIGHT {
                    let mut c = h2conn.clone();
                    tasks.push(tokio::spawn(async move {
                        black_box(send2(&mut c, support::get("/")).await)
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

fn keep_alive(c: &mut Criterion) {
    let server = LoopbackServer::start(app());
    let rt = client_runtime();
    let mut g = c.benchmark_group("keep_alive_connections");
    g.throughput(Throughput::Elements(1));
    let mut conn = rt.block_on(h1(server.addr));
    g.bench_function("reused_connection", |b| {
        b.iter(|| black_box(rt.block_on(send1(&mut conn, support::get("/")))))
    });
    g.bench_function("new_connection_per_request", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut c = h1(server.addr).await;
                black_box(send1(&mut c, support::get("/")).await)
            })
        })
    });
    g.finish();
}

criterion_group!(benches, concurrent, keep_alive);
criterion_main!(benches);
