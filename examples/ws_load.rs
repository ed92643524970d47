//! Load client for WebSocket servers (`bench_server`'s `/ws` and `/ws/ticks`, the axum peer's
//! `/ws`). Run by `scripts/ws_bench.sh`, which raises the open-file limit and reads the
//! server's memory and CPU time from /proc.
//!
//! ```sh
//! ulimit -n 65536
//! cargo run --release --example ws_load -- ADDR idle CLIENTS [deflate]   # hold CLIENTS sockets
//! cargo run --release --example ws_load -- ADDR echo CLIENTS MESSAGES    # small-message echo
//! cargo run --release --example ws_load -- ADDR broadcast CLIENTS TICKS  # /ws/ticks fan-out
//! ```
//!
//! - `idle` opens CLIENTS sockets to `/ws` (with `deflate`, each offers permessage-deflate),
//!   prints `open N` once all are open and holds them until stdin closes.
//! - `echo` opens CLIENTS sockets to `/ws`, each sends MESSAGES 32-byte text messages one at a
//!   time (the next once the echo is back), and prints the messages and the wall time.
//! - `broadcast` opens CLIENTS sockets to `/ws/ticks` and measures, for TICKS ticks received
//!   after every socket is open, how long after the *first* socket each socket got the tick
//!   (the server stamps no time into ticks: this is the fan-out spread, as `sse_load` measures
//!   it for SSE), and prints p50 / p99 / max.
//!
//! The handshakes are written by hand for `idle` (so that a socket costs the client only its
//! TCP stream); `echo` and `broadcast` use tokio-tungstenite.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str =
    "ws_load ADDR idle CLIENTS [deflate] | echo CLIENTS MESSAGES | broadcast CLIENTS TICKS";

/// Open `/ws` by hand and read the 101: the socket, held by the caller.
async fn open_raw(addr: &str, deflate: bool) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    let offer = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    if !text.starts_with("http/1.1 101") {
        return Err(std::io::Error::other(format!("handshake refused: {text}")));
    }
    if deflate && !text.contains("permessage-deflate") {
        return Err(std::io::Error::other(
            "permessage-deflate was not negotiated",
        ));
    }
    Ok(s)
}

async fn idle(addr: String, clients: usize, deflate: bool) {
    let mut held = Vec::with_capacity(clients);
    // 200 handshakes in flight at a time, so the listen backlog never overflows.
    let mut pending = futures_util::stream::iter((0..clients).map(|_| open_raw(&addr, deflate)))
        .buffer_unordered(200);
    while let Some(s) = pending.next().await {
        held.push(s.expect("socket"));
    }
    println!("open {}", held.len());
    // Hold until stdin closes (the script decides when it has measured).
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    drop(held);
}

async fn echo(addr: String, clients: usize, messages: usize) {
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("connect");
        sockets.push(ws);
    }
    let payload = "x".repeat(32);
    let started = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let payload = payload.clone();
            tokio::spawn(async move {
                for _ in 0..messages {
                    ws.send(Message::text(payload.clone())).await.expect("send");
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.len() == payload.len() => {}
                        other => panic!("unexpected echo: {other:?}"),
                    }
                }
                let _ = ws.close(None).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    let wall = started.elapsed();
    let total = clients * messages;
    println!(
        "echoed {total} messages on {clients} sockets in {:.3} s ({:.0} msg/s)",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
}

async fn broadcast(addr: String, clients: usize, ticks: usize) {
    type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;
    let connected = Arc::new(AtomicUsize::new(0));
    let mut all: Vec<Arrivals> = Vec::with_capacity(clients);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let arrivals: Arrivals = Arc::default();
        all.push(arrivals.clone());
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/ticks"))
            .await
            .expect("connect");
        connected.fetch_add(1, Ordering::SeqCst);
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let now = Instant::now();
                let seq = t
                    .trim_start_matches("{\"seq\":")
                    .trim_end_matches('}')
                    .parse::<u64>()
                    .unwrap_or(0);
                arrivals.lock().unwrap().push((seq, now));
            }
        }));
    }
    // Ticks come every 100 ms: wait for TICKS of them after every socket is open.
    let first_counted = all[0].lock().unwrap().last().map_or(0, |a| a.0) + 1;
    tokio::time::sleep(Duration::from_millis(100 * ticks as u64 + 500)).await;
    let last_counted = first_counted + ticks as u64 - 1;
    let mut delays = Vec::new();
    let mut missing = 0usize;
    for seq in first_counted..=last_counted {
        let times: Vec<Option<Instant>> = all
            .iter()
            .map(|a| a.lock().unwrap().iter().find(|x| x.0 == seq).map(|x| x.1))
            .collect();
        let Some(first) = times.iter().flatten().min().copied() else {
            missing += clients;
            continue;
        };
        for t in &times {
            match t {
                Some(t) => delays.push(t.duration_since(first)),
                None => missing += 1,
            }
        }
    }
    for t in tasks {
        t.abort();
    }
    delays.sort();
    let pct = |p: f64| {
        delays
            .get(((delays.len() as f64 * p) as usize).min(delays.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "broadcast to {clients} sockets, {ticks} ticks ({first_counted}..={last_counted}): \
         fan-out delay p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {missing} deliveries missing",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        delays.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).unwrap_or_else(|| panic!("usage: {USAGE}"));
    let addr = arg(0).clone();
    let n = |i: usize| -> usize { arg(i).parse().unwrap_or_else(|_| panic!("usage: {USAGE}")) };
    match arg(1).as_str() {
        "idle" => idle(addr, n(2), args.get(3).is_some_and(|a| a == "deflate")).await,
        "echo" => echo(addr, n(2), n(3)).await,
        "broadcast" => broadcast(addr, n(2), n(3)).await,
        _ => panic!("usage: {USAGE}"),
    }
}
