//! Load client for `bench_server`'s `/sse`: opens many concurrent SSE connections and measures
//! how quickly each published tick reaches all of them. Run by `scripts/stream_bench.sh`,
//! which raises the open-file limit and reads the server's memory.
//!
//! ```sh
//! ulimit -n 65536
//! cargo run --release --example sse_load -- [ADDR] [CLIENTS] [TICKS]   # 127.0.0.1:18090 10000 50
//! cargo run --release --example sse_load -- [ADDR] [CLIENTS] idle     # baseline: GET / kept open
//! cargo run --release --example sse_load -- ADDR1,ADDR2 [CLIENTS] [TICKS]  # clients split over both
//! ```
//!
//! `idle` opens the same number of keep-alive connections that each made one `GET /`, holds
//! them 3 s and exits: the server's memory then is the per-connection baseline that SSE adds to.
//!
//! The server stamps no time into the events (`data: {"seq":N}`), so the delay of tick N at
//! client i is measured from the **first** client that received tick N: it is the fan-out
//! spread, publish-to-last-delivery minus the fastest delivery (which on loopback is tens of
//! microseconds after the publish). Reported: p50 / p99 / max of that delay over every
//! (tick, client) pair, ticks counted only once every client is connected.
//!
//! Ticks that carry their publish time (`data: {"seq":N,"t":MICROS}`, microseconds since the
//! Unix epoch, as bench_server's `REDIS_URL` mode stamps them just before the `XADD`) are also
//! measured from that moment: the whole path publish → Redis → reader → fan-out → client, on
//! one machine's clock.
//!
//! Every tick in the window is accounted for: delivered, or announced as skipped by the hub's
//! `event: lagged` (`{"missed":N}`, counted), or lost with a client whose stream ended early
//! (counted); `missing` is what is left. A tick split over two reads is counted once.
//!
//! `LOAD_SPIN=1` keeps the client's runtime busy (a task that only yields), so its thread
//! never sleeps in `epoll_wait`. On loopback the receiver's TCP work, waking the receiving
//! thread included, runs on the sender's core: a client whose thread sleeps makes the server
//! pay an inter-processor wake-up (in a VM, an exit to the hypervisor) for every delivery,
//! which a client on another machine never costs it. Use it when the client has a core of its
//! own (`scripts/fanout_bench.sh` does, with the client pinned).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One client's arrivals (its own lock, so clients never contend): (seq, when, the delay
/// since the tick's publish time when it carries one).
type Arrivals = Arc<Mutex<Vec<(u64, Instant, Option<Duration>)>>>;

/// What the clients share with the main task.
#[derive(Default)]
struct Totals {
    /// Clients that received their response's first bytes.
    connected: AtomicUsize,
    /// The first tick of the window (0 until the window is chosen).
    start_seq: AtomicU64,
    /// The latest tick any client has seen.
    latest: AtomicU64,
    /// Deliveries of the window's ticks.
    counted: AtomicUsize,
    /// Events the hub announced as skipped (`lagged`), once the window is chosen.
    lagged: AtomicU64,
}

async fn client(
    path: &'static str,
    addr: String,
    ticks: u64,
    totals: Arc<Totals>,
    arrivals: Arrivals,
) -> std::io::Result<()> {
    let Totals {
        connected,
        start_seq,
        latest,
        counted: counted_total,
        lagged,
    } = &*totals;
    let mut s = loop {
        match TcpStream::connect(&addr).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n").as_bytes())
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
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if !counted {
            counted = true;
            connected.fetch_add(1, Ordering::SeqCst);
        }
        pending.extend_from_slice(&buf[..n]);
        let keep_from = scan(&pending, |mark| match mark {
            Mark::Tick { seq, stamp } => {
                latest.fetch_max(seq, Ordering::Relaxed);
                let from = start_seq.load(Ordering::Relaxed);
                // Only the window's ticks: counting later ones would end the wait while
                // deliveries of its last ticks are still on their way.
                if from != 0 && (from..from + ticks).contains(&seq) {
                    let since = stamp.map(|t| wall.saturating_sub(Duration::from_micros(t)));
                    arrivals.lock().unwrap().push((seq, now, since));
                    counted_total.fetch_add(1, Ordering::Relaxed);
                }
            }
            Mark::Lagged(n) => {
                if start_seq.load(Ordering::Relaxed) != 0 {
                    lagged.fetch_add(n, Ordering::Relaxed);
                }
            }
        });
        pending.drain(..keep_from);
    }
}

/// What [`scan`] finds in the stream: a tick, or the hub's `event: lagged` with its count.
#[derive(Debug, PartialEq, Eq)]
enum Mark {
    Tick { seq: u64, stamp: Option<u64> },
    Lagged(u64),
}

const TICK: &[u8] = b"{\"seq\":";
const LAGGED: &[u8] = b"{\"missed\":";

/// Calls `found` for every complete tick (`{"seq":N}` or `{"seq":N,"t":MICROS}`) and lagged
/// count (`{"missed":N}`) in `buf`; returns where the unread tail starts: at a marker whose
/// closing brace has not arrived yet, or the last bytes, which may begin one.
fn scan(buf: &[u8], mut found: impl FnMut(Mark)) -> usize {
    let mut at = 0;
    loop {
        let next = [TICK, LAGGED]
            .into_iter()
            .filter_map(|m| find(&buf[at..], m).map(|i| (at + i, m)))
            .min_by_key(|&(i, _)| i);
        let Some((start, mark)) = next else {
            // No marker starts before the last bytes, which may be the beginning of one.
            let longest = TICK.len().max(LAGGED.len()) - 1;
            return at.max(buf.len().saturating_sub(longest));
        };
        let digits = start + mark.len();
        let Some(end) = buf[digits..].iter().position(|&b| b == b'}') else {
            return start; // the rest of this one is still on its way
        };
        let fields = std::str::from_utf8(&buf[digits..digits + end]).unwrap_or("");
        if mark == TICK {
            let (seq, stamp) = match fields.split_once(",\"t\":") {
                Some((seq, t)) => (seq, t.parse::<u64>().ok()),
                None => (fields, None),
            };
            if let Ok(seq) = seq.parse::<u64>() {
                found(Mark::Tick { seq, stamp });
            }
        } else if let Ok(missed) = fields.parse::<u64>() {
            found(Mark::Lagged(missed));
        }
        at = digits + end + 1;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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
    let addrs: Vec<String> = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18090".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let ticks_arg = args.next().unwrap_or_else(|| "50".into());
    let idle = ticks_arg == "idle";
    let ticks: u64 = ticks_arg.parse().unwrap_or(50);
    let path = if idle { "/" } else { "/sse" };
    if std::env::var("LOAD_SPIN").as_deref() == Ok("1") {
        // Never idle: see the module docs.
        tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
    }

    let totals = Arc::new(Totals::default());
    // Clients whose stream ended or failed (their later ticks are missing).
    let ended = Arc::new(AtomicUsize::new(0));
    let mut all: Vec<Arrivals> = Vec::with_capacity(clients);
    let t0 = Instant::now();
    for i in 0..clients {
        let arrivals = Arrivals::default();
        all.push(arrivals.clone());
        let client = client(
            path,
            addrs[i % addrs.len()].clone(),
            ticks,
            totals.clone(),
            arrivals,
        );
        let ended = ended.clone();
        tokio::spawn(async move {
            if let Err(e) = client.await {
                if ended.load(Ordering::Relaxed) == 0 {
                    eprintln!("a client failed: {e}");
                }
            }
            ended.fetch_add(1, Ordering::Relaxed);
        });
    }
    while totals.connected.load(Ordering::SeqCst) < clients {
        if t0.elapsed() > Duration::from_secs(120) {
            eprintln!(
                "only {} of {clients} clients connected after 120 s",
                totals.connected.load(Ordering::SeqCst)
            );
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{clients} clients connected in {:.1?}", t0.elapsed());
    if idle {
        tokio::time::sleep(Duration::from_secs(3)).await;
        std::process::exit(0);
    }
    // Count from two ticks after the latest one any client has seen.
    while totals.latest.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seq_now = totals.latest.load(Ordering::SeqCst);
    let first = seq_now + 2;
    totals.start_seq.store(first, Ordering::SeqCst);
    let last = first + ticks - 1;
    let deadline = Instant::now() + Duration::from_millis(100 * ticks + 30_000);
    let want = clients * ticks as usize;
    while totals.counted.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut by_seq: HashMap<u64, Vec<Instant>> = HashMap::new();
    let mut from_publish = Vec::new();
    for a in &all {
        for &(seq, t, since) in a.lock().unwrap().iter() {
            if seq <= last {
                by_seq.entry(seq).or_default().push(t);
                from_publish.extend(since);
            }
        }
    }
    let mut delays = Vec::new();
    // Per tick, the time its last client got it: tells a slow fan-out from a few slow ticks.
    let mut spreads = Vec::new();
    let mut missing = 0usize;
    // (tick, deliveries missing) for the ticks some client did not get.
    let mut short = Vec::new();
    for seq in first..=last {
        let Some(v) = by_seq.get(&seq) else {
            missing += clients;
            short.push((seq, clients));
            continue;
        };
        missing += clients.saturating_sub(v.len());
        if v.len() < clients {
            short.push((seq, clients - v.len()));
        }
        let min = *v.iter().min().unwrap();
        let max = *v.iter().max().unwrap();
        spreads.push(max - min);
        delays.extend(v.iter().map(|t| *t - min));
    }
    delays.sort();
    spreads.sort();
    let late = delays
        .iter()
        .filter(|d| **d >= Duration::from_millis(100))
        .count();
    if !short.is_empty() {
        println!("ticks with missing deliveries (tick, missing): {short:?}");
    }
    println!(
        "accounted for: {} events announced as skipped by `lagged` events (the hub's slow-consumer policy), {} clients whose stream ended early",
        totals.lagged.load(Ordering::Relaxed),
        ended.load(Ordering::Relaxed),
    );
    println!(
        "ticks {first}..={last}: {} deliveries, {missing} missing; fan-out delay p50 {:.1?}, p99 {:.1?}, max {:.1?}; {:.2}% of deliveries at 100 ms or later",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or_default(),
        late as f64 * 100.0 / delays.len().max(1) as f64,
    );
    if !from_publish.is_empty() {
        from_publish.sort();
        let late = from_publish
            .iter()
            .filter(|d| **d >= Duration::from_millis(100))
            .count();
        println!(
            "from the publish (XADD): p50 {:.1?}, p99 {:.1?}, max {:.1?}; {:.2}% at 100 ms or later",
            percentile(&from_publish, 0.5),
            percentile(&from_publish, 0.99),
            from_publish.last().copied().unwrap_or_default(),
            late as f64 * 100.0 / from_publish.len() as f64,
        );
    }
    println!(
        "per tick, last delivery: fastest {:.1?}, median {:.1?}, slowest {:.1?}",
        spreads.first().copied().unwrap_or_default(),
        percentile(&spreads, 0.5),
        spreads.last().copied().unwrap_or_default(),
    );
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(chunks: &[&[u8]]) -> Vec<Mark> {
        let mut out = Vec::new();
        let mut pending = Vec::new();
        for c in chunks {
            pending.extend_from_slice(c);
            let keep = scan(&pending, |m| out.push(m));
            pending.drain(..keep);
        }
        out
    }

    #[test]
    fn a_tick_split_anywhere_across_reads_is_counted_once() {
        let wire: &[u8] =
            b"event: tick\ndata: {\"seq\":12,\"t\":1796655396007798}\nid: 1796655396007-0\n\n\
            event: lagged\ndata: {\"missed\":3}\n\nevent: tick\ndata: {\"seq\":16}\n\n";
        let want = vec![
            Mark::Tick {
                seq: 12,
                stamp: Some(1796655396007798),
            },
            Mark::Lagged(3),
            Mark::Tick {
                seq: 16,
                stamp: None,
            },
        ];
        assert_eq!(marks(&[wire]), want);
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                let got = marks(&[&wire[..i], &wire[i..j], &wire[j..]]);
                assert_eq!(got, want, "split at {i} and {j}");
            }
        }
    }
}
