//! Load client for `bench_server`'s `/sse`: opens many concurrent SSE connections and measures
//! how quickly each published tick reaches all of them. Run by `scripts/stream_bench.sh`,
//! which raises the open-file limit and reads the server's memory.
//!
//! ```sh
//! ulimit -n 65536
//! cargo run --release --example sse_load -- [ADDR] [CLIENTS] [TICKS]   # 127.0.0.1:18090 10000 50
//! ```
//!
//! The server stamps no time into the events (`data: {"seq":N}`), so the delay of tick N at
//! client i is measured from the **first** client that received tick N: it is the fan-out
//! spread, publish-to-last-delivery minus the fastest delivery (which on loopback is tens of
//! microseconds after the publish). Reported: p50 / p99 / max of that delay over every
//! (tick, client) pair, ticks counted only once every client is connected.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Arrivals = Arc<Mutex<HashMap<u64, Vec<Instant>>>>;

async fn client(
    addr: String,
    connected: Arc<AtomicUsize>,
    start_seq: Arc<std::sync::atomic::AtomicU64>,
    arrivals: Arrivals,
) -> std::io::Result<()> {
    let mut s = loop {
        match TcpStream::connect(&addr).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    s.write_all(b"GET /sse HTTP/1.1\r\nhost: bench\r\naccept: text/event-stream\r\n\r\n")
        .await?;
    let mut counted = false;
    let mut buf = vec![0u8; 2048];
    let mut pending = Vec::new();
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        if !counted {
            counted = true;
            connected.fetch_add(1, Ordering::SeqCst);
        }
        pending.extend_from_slice(&buf[..n]);
        // Find every `{"seq":N}` in what arrived; keep a short tail for a split marker.
        let text = String::from_utf8_lossy(&pending).into_owned();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("{\"seq\":") {
            let after = &rest[i + 7..];
            let Some(end) = after.find('}') else {
                break;
            };
            if let Ok(seq) = after[..end].parse::<u64>() {
                let from = start_seq.load(Ordering::SeqCst);
                if from != 0 && seq >= from {
                    arrivals.lock().unwrap().entry(seq).or_default().push(now);
                }
            }
            rest = &after[end..];
        }
        let keep = rest.len().min(32);
        pending = rest.as_bytes()[rest.len() - keep..].to_vec();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let ticks: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);

    let connected = Arc::new(AtomicUsize::new(0));
    let start_seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let arrivals: Arrivals = Arc::default();
    let t0 = Instant::now();
    for _ in 0..clients {
        tokio::spawn(client(
            addr.clone(),
            connected.clone(),
            start_seq.clone(),
            arrivals.clone(),
        ));
    }
    while connected.load(Ordering::SeqCst) < clients {
        if t0.elapsed() > Duration::from_secs(120) {
            eprintln!(
                "only {} of {clients} clients connected after 120 s",
                connected.load(Ordering::SeqCst)
            );
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{clients} clients connected in {:.1?}", t0.elapsed());
    // Learn the current sequence from any client, then count from the next tick on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    start_seq.store(u64::MAX, Ordering::SeqCst);
    // Cheap way to find the current seq: one more connection reading one event.
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(b"GET /sse HTTP/1.1\r\nhost: bench\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let seq_now = loop {
        let n = s.read(&mut buf).await.unwrap();
        let t = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(i) = t.rfind("{\"seq\":") {
            let after = &t[i + 7..];
            if let Some(end) = after.find('}') {
                break after[..end].parse::<u64>().unwrap();
            }
        }
    };
    drop(s);
    let first = seq_now + 2;
    start_seq.store(first, Ordering::SeqCst);
    let last = first + ticks - 1;
    let deadline = Instant::now() + Duration::from_millis(100 * ticks + 30_000);
    loop {
        let done = arrivals
            .lock()
            .unwrap()
            .get(&last)
            .is_some_and(|v| v.len() >= clients);
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let arrivals = arrivals.lock().unwrap();
    let mut delays = Vec::new();
    let mut missing = 0usize;
    for seq in first..=last {
        let Some(v) = arrivals.get(&seq) else {
            missing += clients;
            continue;
        };
        missing += clients.saturating_sub(v.len());
        let min = *v.iter().min().unwrap();
        delays.extend(v.iter().map(|t| *t - min));
    }
    delays.sort();
    println!(
        "ticks {first}..={last}: {} deliveries, {missing} missing; fan-out delay p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or_default()
    );
    std::process::exit(0);
}
