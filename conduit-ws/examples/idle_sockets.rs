//! Memory per idle WebSocket: serve `/ws` (echo), open N sockets from this process's client
//! side, and report the growth of the process's RSS per socket (server and client halves both
//! live in this process, so the figure is an upper bound for the server's share).
//!
//!     cargo run --release -p conduit-ws --example idle_sockets -- 1000
//!
//! Linux only (reads /proc/self/status). The client side is the raw handshake plus a TCP
//! stream, no client library, so it adds little besides the kernel's socket.

use std::time::Duration;

use conduit_core::{Request, Response, Router, get};
use conduit_ws::{WebSocketUpgrade, WsRejection};
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

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let app = Router::new().route(
            "/ws",
            get(|mut req: Request| async move {
                let ws = WebSocketUpgrade::from_request(&mut req)?;
                Ok::<Response, WsRejection>(ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        if msg.is_close() || socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                }))
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

        // Warm up: one socket, so the runtime's and allocator's one-time costs are paid.
        let mut clients = Vec::with_capacity(n + 1);
        clients.push(open(addr).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib();
        for _ in 0..n {
            clients.push(open(addr).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib();
        println!(
            "{n} idle WebSockets after the handshake: RSS {before} KiB -> {after} KiB, {:.2} KiB per socket (server and client side of each)",
            (after - before) as f64 / n as f64
        );
        // Every socket is alive: one echo through each, then idle again.
        for c in &mut clients {
            c.write_all(&[0x81, 0x82, 0, 0, 0, 0, b'o', b'k']).await.unwrap();
            let mut back = [0u8; 4];
            c.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"\x81\x02ok");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let echoed = rss_kib();
        println!(
            "{n} idle WebSockets after one echo each: RSS {before} KiB -> {echoed} KiB, {:.2} KiB per socket",
            (echoed - before) as f64 / n as f64
        );
    });
}

async fn open(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tcp
}
