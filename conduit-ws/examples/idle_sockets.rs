//! Memory per idle WebSocket: serve `/ws` (echo), open N sockets from this process's client
//! side, and report the growth of the process's RSS per socket (server and client halves both
//! live in this process, so the figure is an upper bound for the server's share).
//!
//!     cargo run --release -p conduit-ws --example idle_sockets -- 1000 [MODE]
//!
//! MODE is the compression the sockets run with:
//!
//! - `plain` (the default): no permessage-deflate offer;
//! - `deflate`: offered and negotiated with the default `Deflate` (no context takeover);
//! - `server-takeover`, `client-takeover`, `takeover` (both): the server keeps a compressor,
//!   an inflater, or both per socket.
//!
//! After the idle figure, every socket echoes one message (compressed, 200 bytes inflated, in
//! the deflate modes), so the contexts a mode keeps per socket exist, and the figure is taken
//! again. Linux only (reads /proc/self/status). The client side is the raw handshake plus a
//! TCP stream and one precompressed frame, no client library, so it adds little besides the
//! kernel's socket.

use std::time::Duration;

use conduit_core::{Request, Response, Router, get};
use conduit_ws::{Config, Deflate, WebSocketUpgrade, WsRejection};
use flate2::{Compress, Compression, FlushCompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The server's compression settings for MODE (`None`: no compression).
fn deflate_for(mode: &str) -> Option<Deflate> {
    let d = Deflate::default();
    match mode {
        "plain" => None,
        "deflate" => Some(d),
        "server-takeover" => Some(d.server_context_takeover(true)),
        "client-takeover" => Some(d.client_context_takeover(true)),
        "takeover" => Some(
            d.server_context_takeover(true)
                .client_context_takeover(true),
        ),
        other => panic!(
            "unknown mode {other}: plain, deflate, server-takeover, client-takeover, takeover"
        ),
    }
}

/// One masked client frame (mask 0, so the payload is as is): text, compressed if `rsv1`.
fn frame(rsv1: bool, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut out = vec![
        if rsv1 { 0xC1 } else { 0x81 },
        0x80 | payload.len() as u8,
        0,
        0,
        0,
        0,
    ];
    out.extend_from_slice(payload);
    out
}

/// A 200-byte text, raw-deflated with the tail stripped (RFC 7692).
fn compressed_message() -> Vec<u8> {
    let text = "conduit keeps no compression context per socket unless asked to. ".repeat(4);
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(512);
    c.compress_vec(&text.as_bytes()[..200], &mut out, FlushCompress::Sync)
        .unwrap();
    out.truncate(out.len() - 4);
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mode = args.next().unwrap_or_else(|| "plain".into());
    let deflate = deflate_for(&mode);
    let offer = deflate.is_some();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let app = Router::new().route(
            "/ws",
            get(move |mut req: Request| {
                let config = Config::default().deflate(deflate.clone());
                async move {
                    let ws = WebSocketUpgrade::from_request(&mut req)?;
                    Ok::<Response, WsRejection>(ws.config(config).on_upgrade(
                        |mut socket| async move {
                            while let Some(Ok(msg)) = socket.recv().await {
                                if msg.is_close() || socket.send(msg).await.is_err() {
                                    break;
                                }
                            }
                        },
                    ))
                }
            }),
        );
        let server = conduit_server::Server::bind(
            conduit_server::Config::new("127.0.0.1:0")
                .handle_signals(false)
                .max_connections(n + 100),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        tokio::spawn(server.serve(app));
        let message = if offer {
            frame(true, &compressed_message())
        } else {
            frame(false, b"ok")
        };

        // Warm up: one socket and one echo, so the runtime's and allocator's one-time costs
        // (and the worker threads' shared compression contexts) are paid.
        let mut clients = Vec::with_capacity(n + 1);
        clients.push(open(addr, offer).await);
        echo(&mut clients[0], &message).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib();
        for _ in 0..n {
            clients.push(open(addr, offer).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib();
        println!(
            "{mode}: {n} idle WebSockets after the handshake: RSS {before} KiB -> {after} KiB, {:.2} KiB per socket (server and client side of each)",
            (after - before) as f64 / n as f64
        );
        // Every socket is alive: one echo through each, then idle again.
        for c in &mut clients[1..] {
            echo(c, &message).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let echoed = rss_kib();
        println!(
            "{mode}: {n} idle WebSockets after one echo each: RSS {before} KiB -> {echoed} KiB, {:.2} KiB per socket",
            (echoed - before) as f64 / n as f64
        );
    });
}

/// Send `message` and read the echoed frame whole.
async fn echo(c: &mut TcpStream, message: &[u8]) {
    c.write_all(message).await.unwrap();
    let mut head = [0u8; 2];
    c.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0] & 0x0F, 0x1, "a text frame back");
    let len = match head[1] & 0x7F {
        126 => usize::from(c.read_u16().await.unwrap()),
        127 => c.read_u64().await.unwrap() as usize,
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    c.read_exact(&mut payload).await.unwrap();
}

async fn open(addr: std::net::SocketAddr, offer: bool) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let extensions = if offer {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extensions}\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    assert_eq!(
        offer,
        String::from_utf8_lossy(&head).contains("permessage-deflate"),
        "negotiated as offered"
    );
    tcp
}
