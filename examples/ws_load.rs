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
//! `idle` and `broadcast` write the handshake by hand and read frames with a minimal reader, so
//! that a socket costs the client only its TCP stream and a tick a few comparisons (a full
//! client per socket would make the load generator, not the server, the bottleneck at 10,000
//! sockets); `echo` uses tokio-tungstenite.
//!
//! `LOAD_SPIN=1` keeps the client's runtime busy (a task that only yields), so its thread
//! never sleeps in `epoll_wait`. On loopback the receiver's TCP work, waking the receiving
//! thread included, runs on the sender's core: a client whose thread sleeps makes the server
//! pay an inter-processor wake-up (in a VM, an exit to the hypervisor) for every delivery,
//! which a client on another machine never costs it. Use it when the client has a core of its
//! own (`scripts/fanout_bench.sh` does, with the client pinned).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str =
    "ws_load ADDR idle CLIENTS [deflate] | echo CLIENTS MESSAGES | broadcast CLIENTS TICKS";

/// Open `path` by hand and read the 101: the socket, held by the caller.
async fn open_raw(addr: &str, path: &str, deflate: bool) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    let offer = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
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
    let mut pending =
        futures_util::stream::iter((0..clients).map(|_| open_raw(&addr, "/ws", deflate)))
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

/// The first whole unmasked frame in `buf`: its opcode, payload and length on the wire.
fn frame(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (len, at) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at + len)?;
    Some((b0 & 0x0f, payload, at + len))
}

async fn broadcast(addr: String, clients: usize, ticks: usize) {
    type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;
    // Ticks are recorded only once every socket is open, so the sockets opened first do not
    // pile up arrivals while the rest connect.
    let counting = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(AtomicU64::new(0));
    // Raw sockets and a minimal frame reader (the server's frames are unmasked), so the client
    // costs little next to the server: a full WebSocket client per socket on one core would be
    // the bottleneck at 10,000 sockets. Opened 256 at a time.
    let opened: Vec<TcpStream> = futures_util::stream::iter(0..clients)
        .map(|_| open_raw(&addr, "/ws/ticks", false))
        .buffer_unordered(256)
        .map(|r| r.expect("connect"))
        .collect()
        .await;
    let mut all: Vec<Arrivals> = Vec::with_capacity(clients);
    let mut tasks = Vec::with_capacity(clients);
    for mut s in opened {
        let arrivals: Arrivals = Arc::default();
        all.push(arrivals.clone());
        let (counting, latest) = (counting.clone(), latest.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 4096];
            loop {
                let n = match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let now = Instant::now();
                buf.extend_from_slice(&chunk[..n]);
                // Every whole frame in the buffer: a text frame carries {"seq":N}.
                while let Some((opcode, payload, used)) = frame(&buf) {
                    if opcode == 1 {
                        let seq = std::str::from_utf8(payload)
                            .unwrap_or("")
                            .trim_start_matches("{\"seq\":")
                            .trim_end_matches('}')
                            .parse::<u64>()
                            .unwrap_or(0);
                        latest.fetch_max(seq, Ordering::Relaxed);
                        if counting.load(Ordering::Relaxed) {
                            arrivals.lock().unwrap().push((seq, now));
                        }
                    }
                    buf.drain(..used);
                }
            }
        }));
    }
    // Ticks come every 100 ms: count TICKS of them, starting after the latest one any socket
    // has seen once every socket is open and has read what reached it while the others were
    // opening (the sockets opened first hold ticks the last ones never got: counting from
    // those would count deliveries that could not happen).
    tokio::time::sleep(Duration::from_millis(300)).await;
    counting.store(true, Ordering::SeqCst);
    let first_counted = latest.load(Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(100 * ticks as u64 + 500)).await;
    let last_counted = first_counted + ticks as u64 - 1;
    // A server that fell behind is still delivering: wait for the last counted tick to reach
    // every socket (up to 10 s more), so that "missing" means not delivered, not late.
    let stragglers = Instant::now() + Duration::from_secs(10);
    while Instant::now() < stragglers
        && !all
            .iter()
            .all(|a| a.lock().unwrap().iter().any(|x| x.0 >= last_counted))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    if std::env::var("LOAD_SPIN").as_deref() == Ok("1") {
        // Never idle: see the module docs.
        tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
    }
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
