//! Heap held by idle HTTP/1 connections, counted by dhat as this test binary's allocator.
//!
//! hyper as published keeps an 8 KiB read buffer (16 KiB after the first request) and an 8 KiB
//! write buffer for a connection's whole life: ~24 KiB an idle keep-alive client, or a client
//! between two Server-Sent Events. conduit builds on hyper with the patch in
//! `vendor/hyper/CONDUIT_PATCH.md`, which reads idle connections through the stack and frees
//! their buffers at the second idle poll in a row. This test fails if that patch is lost (the
//! `[patch.crates-io]` entry removed, or a hyper upgrade without it): only a few KiB a
//! connection (its task, hyper's state) may remain.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use conduit_core::{Body, IntoResponse, Request};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CLIENTS: usize = 64;
/// Heap a connection may hold while idle. Measured (debug build): 4.3 KB idle keep-alive,
/// 4.0 KB streaming; 29 KB and 28.6 KB without the hyper patch.
const MAX_BYTES_PER_CONNECTION: usize = 8 * 1024;

/// A streaming body that sends a chunk every 50 ms, like an SSE stream: the connection is
/// woken for each one and otherwise waits.
struct Ticks(tokio::time::Interval);

impl futures_core::Stream for Ticks {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .poll_tick(cx)
            .map(|_| Some(Ok(Bytes::from_static(b"tick\n"))))
    }
}

/// Opens `CLIENTS` connections that each send `GET path` and read until `until` arrives, then
/// returns them (still open) with the heap growth per connection once the server is idle.
async fn heap_per_connection(
    addr: std::net::SocketAddr,
    path: &'static str,
    until: &'static [u8],
) -> (Vec<TcpStream>, usize) {
    let before = dhat::HeapStats::get().curr_bytes;
    // Blocking std clients on another thread: they allocate nothing per connection on the heap
    // beyond the Vec that holds them, and the server keeps running on this runtime meanwhile.
    let clients = tokio::task::spawn_blocking(move || {
        let mut clients = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let mut got = [0u8; 1024];
            let mut n = 0;
            while !got[..n].windows(until.len()).any(|w| w == until) {
                let r = s.read(&mut got[n..]).unwrap();
                assert!(r > 0, "server closed the connection");
                n += r;
            }
            clients.push(s);
        }
        clients
    })
    .await
    .unwrap();
    // A connection frees its buffers when a poll finds it idle for the second time in a row
    // (a keep-alive client's next request usually comes before that): let the watchdog's tick
    // (100 ms with this write timeout) or the next chunk wake every connection a few times.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = dhat::HeapStats::get().curr_bytes;
    (clients, after.saturating_sub(before) / CLIENTS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_hold_no_hyper_buffers() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let handler = |req: Request| async move {
        if req.uri().path() == "/stream" {
            let every = tokio::time::interval(Duration::from_millis(50));
            Body::from_stream(Ticks(every)).into_response()
        } else {
            "Hello, World!".into_response()
        }
    };
    let srv = start(config().write_timeout(Duration::from_millis(400)), handler).await;
    // Warm-up: one-time allocations (runtime, server, lazy statics) are not per connection.
    let (warm, _) = heap_per_connection(srv.addr, "/", b"Hello, World!").await;
    let (warm2, _) = heap_per_connection(srv.addr, "/stream", b"tick").await;
    drop((warm, warm2));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (keep_alive, per_idle) = heap_per_connection(srv.addr, "/", b"Hello, World!").await;
    let (streams, per_stream) = heap_per_connection(srv.addr, "/stream", b"tick").await;
    eprintln!("heap per connection: idle keep-alive {per_idle} B, streaming {per_stream} B");
    assert!(
        per_idle < MAX_BYTES_PER_CONNECTION,
        "an idle keep-alive connection holds {per_idle} bytes of heap"
    );
    assert!(
        per_stream < MAX_BYTES_PER_CONNECTION,
        "a connection between two chunks of its response holds {per_stream} bytes of heap"
    );
    drop((keep_alive, streams));
}
