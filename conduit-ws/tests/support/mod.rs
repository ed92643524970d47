//! The server the integration tests talk to, and a raw TCP client that speaks the WebSocket
//! wire format by hand (to send the frames a well-behaved client library refuses to send).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use conduit_core::{Request, Response, Router, any, get};
use conduit_server::{Config as ServerConfig, Server, ShutdownHandle};
use conduit_ws::{Config, Deflate, Message, WebSocket, WebSocketUpgrade, WsRejection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The limits of `/echo`: small enough to echo up to them quickly in a debug build.
pub const MAX_FRAME: usize = 128 << 10;
pub const MAX_MESSAGE: usize = 256 << 10;
/// A guard against a hung test, far above anything the tests wait for.
pub const GUARD: Duration = Duration::from_secs(20);

pub struct Running {
    pub addr: SocketAddr,
    pub handle: ShutdownHandle,
    pub task: JoinHandle<Result<(), conduit_server::ServerError>>,
    /// Sockets whose handler is running.
    pub open: Arc<AtomicUsize>,
    /// Messages the `/flood` handler has sent.
    pub flooded: Arc<AtomicUsize>,
    /// The most bytes the `/flood` socket ever had queued.
    pub flood_buffered: Arc<AtomicUsize>,
}

pub fn echo_config() -> Config {
    Config::default()
        .max_frame_size(MAX_FRAME)
        .max_message_size(MAX_MESSAGE)
}

/// Echo text and binary messages until the stream ends.
async fn echo(mut socket: WebSocket, open: Arc<AtomicUsize>) {
    open.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
            break;
        }
    }
    open.fetch_sub(1, Ordering::SeqCst);
}

fn upgrade(req: &mut Request) -> Result<WebSocketUpgrade, WsRejection> {
    WebSocketUpgrade::from_request(req)
}

pub fn app(
    open: Arc<AtomicUsize>,
    flooded: Arc<AtomicUsize>,
    buffered: Arc<AtomicUsize>,
) -> Router {
    let o1 = open.clone();
    let o2 = open.clone();
    let o3 = open.clone();
    let o4 = open.clone();
    let o5 = open.clone();
    Router::new()
        .route(
            "/echo",
            // `any`: an HTTP/2 WebSocket (RFC 8441) arrives as CONNECT, HTTP/1.1 as GET.
            any(move |mut req: Request| {
                let open = o1.clone();
                async move {
                    let ws = upgrade(&mut req)?;
                    Ok::<Response, WsRejection>(
                        ws.protocols(["chat.v2", "chat"])
                            .config(echo_config())
                            .on_upgrade(move |s| echo(s, open)),
                    )
                }
            }),
        )
        .route(
            "/echo-takeover",
            get(move |mut req: Request| {
                let open = o5.clone();
                async move {
                    let ws = upgrade(&mut req)?;
                    let deflate = Deflate::default()
                        .server_context_takeover(true)
                        .client_context_takeover(true);
                    Ok::<Response, WsRejection>(
                        ws.config(echo_config().deflate(Some(deflate)))
                            .on_upgrade(move |s| echo(s, open)),
                    )
                }
            }),
        )
        .route(
            "/info",
            any(|mut req: Request| async move {
                let ws = upgrade(&mut req)?;
                Ok::<Response, WsRejection>(ws.on_upgrade(|mut socket| async move {
                    let about = format!("{:?}", socket.http_version());
                    if socket.send(Message::text(about)).await.is_ok() {
                        while let Some(Ok(_)) = socket.recv().await {}
                    }
                }))
            }),
        )
        .route(
            "/split-echo",
            get(move |mut req: Request| {
                let open = o4.clone();
                async move {
                    let ws = upgrade(&mut req)?;
                    Ok::<Response, WsRejection>(ws.config(echo_config()).on_upgrade(
                        move |socket| async move {
                            use futures_util::{SinkExt, StreamExt};
                            open.fetch_add(1, Ordering::SeqCst);
                            let (mut tx, mut rx) = socket.split();
                            let (q_tx, mut q_rx) = tokio::sync::mpsc::channel::<Message>(4);
                            let writer = tokio::spawn(async move {
                                while let Some(m) = q_rx.recv().await {
                                    if tx.send(m).await.is_err() {
                                        break;
                                    }
                                }
                            });
                            while let Some(Ok(msg)) = rx.next().await {
                                if matches!(msg, Message::Text(_) | Message::Binary(_))
                                    && q_tx.send(msg).await.is_err()
                                {
                                    break;
                                }
                            }
                            drop(q_tx);
                            let _ = writer.await;
                            open.fetch_sub(1, Ordering::SeqCst);
                        },
                    ))
                }
            }),
        )
        .route(
            "/origin",
            get(move |mut req: Request| {
                let open = o2.clone();
                async move {
                    let ws = upgrade(&mut req)?;
                    Ok::<Response, WsRejection>(
                        ws.allowed_origins(["https://app.example", "http://localhost:3000"])
                            .on_upgrade(move |s| echo(s, open)),
                    )
                }
            }),
        )
        .route(
            "/idle",
            get(move |mut req: Request| {
                let open = o3.clone();
                async move {
                    let ws = upgrade(&mut req)?;
                    let config = Config::default()
                        .ping_interval(Some(Duration::from_millis(200)))
                        .idle_timeout(Some(Duration::from_millis(600)))
                        .close_timeout(Duration::from_millis(300));
                    Ok::<Response, WsRejection>(
                        ws.config(config).on_upgrade(move |s| echo(s, open)),
                    )
                }
            }),
        )
        .route(
            "/flood",
            get(move |mut req: Request| {
                let flooded = flooded.clone();
                let buffered = buffered.clone();
                async move {
                    let ws = upgrade(&mut req)?;
                    let config = Config::default().write_buffer_size(16 << 10);
                    Ok::<Response, WsRejection>(ws.config(config).on_upgrade(
                        move |mut socket| async move {
                            use futures_util::SinkExt;
                            // `feed` queues without flushing: only the send queue's bound
                            // (poll_ready) holds this loop back.
                            let msg = Message::binary(vec![0x5A; 1024]);
                            while socket.feed(msg.clone()).await.is_ok() {
                                flooded.fetch_add(1, Ordering::SeqCst);
                                buffered.fetch_max(socket.buffered(), Ordering::SeqCst);
                            }
                        },
                    ))
                }
            }),
        )
}

pub async fn start() -> Running {
    start_with(ServerConfig::new("127.0.0.1:0").handle_signals(false)).await
}

pub async fn start_with(config: ServerConfig) -> Running {
    let open = Arc::new(AtomicUsize::new(0));
    let flooded = Arc::new(AtomicUsize::new(0));
    let flood_buffered = Arc::new(AtomicUsize::new(0));
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    let task =
        tokio::spawn(server.serve(app(open.clone(), flooded.clone(), flood_buffered.clone())));
    Running {
        addr,
        handle,
        task,
        open,
        flooded,
        flood_buffered,
    }
}

/// A handshake's status line and headers (lower-cased names), as the server sent them.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Send a request head by hand and read the response head.
pub async fn raw_request(addr: SocketAddr, head: &str) -> (TcpStream, Head) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "connection closed in the response head: {buf:?}");
        buf.push(byte[0]);
    }
    let text = String::from_utf8(buf).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    (tcp, Head { status, headers })
}

/// The request head of a valid handshake to `path`, with `extra` header lines.
pub fn handshake(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

/// A raw client over an upgraded connection.
pub struct RawClient {
    pub tcp: TcpStream,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr, path: &str) -> RawClient {
        let (tcp, head) = raw_request(addr, &handshake(path, "")).await;
        assert_eq!(head.status, 101);
        assert_eq!(
            head.get("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        RawClient { tcp }
    }

    /// Send one frame: the first byte (FIN, RSV, opcode) as given, masked unless `masked` is false.
    pub async fn send_frame(&mut self, b0: u8, payload: &[u8], masked: bool) {
        let bytes = encode(b0, payload, masked);
        self.tcp.write_all(&bytes).await.unwrap();
    }

    /// Send only a frame header announcing `len` bytes (masked).
    pub async fn send_header(&mut self, b0: u8, len: u64) {
        let mut out = vec![b0];
        push_len(&mut out, len, true);
        out.extend_from_slice(&[9, 8, 7, 6]);
        self.tcp.write_all(&out).await.unwrap();
    }

    /// Read one server frame: (first byte, payload). Panics at end of file.
    pub async fn read_frame(&mut self) -> (u8, Vec<u8>) {
        self.try_read_frame()
            .await
            .expect("a frame, not end of file")
    }

    pub async fn try_read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        match self.tcp.read_exact(&mut h).await {
            Ok(_) => {}
            Err(_) => return None,
        }
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = match h[1] & 0x7F {
            126 => u64::from(self.tcp.read_u16().await.unwrap()),
            127 => self.tcp.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        self.tcp.read_exact(&mut payload).await.unwrap();
        Some((h[0], payload))
    }

    /// Read frames until a Close: its code, then check that the server closes the connection.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            let (b0, payload) = self.read_frame().await;
            if b0 & 0x0F == 0x8 {
                assert!(payload.len() >= 2, "close without a code");
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let mut rest = [0u8; 16];
                let n = tokio::time::timeout(GUARD, self.tcp.read(&mut rest))
                    .await
                    .expect("the server closes the connection after its Close")
                    .unwrap_or(0);
                assert_eq!(n, 0, "nothing after the Close");
                return code;
            }
        }
    }
}

fn push_len(out: &mut Vec<u8>, len: u64, masked: bool) {
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len < 65536 {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

pub fn encode(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![b0];
    push_len(&mut out, payload.len() as u64, masked);
    if masked {
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

// ---- an RFC 8441 client: hyper's HTTP/2 client sends the extended CONNECT, tokio-tungstenite
// speaks RFC 6455 over the stream it opens.

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper::ext::Protocol;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

pub type H2Client = SendRequest<Empty<Bytes>>;
pub type H2Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

pub async fn h2_over<T>(io: T) -> H2Client
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) arrive with its first frames: one
    // plain request makes sure they have been read before an extended CONNECT is sent.
    let warm = http::Request::get("http://localhost/none")
        .body(Empty::new())
        .unwrap();
    tx.send_request(warm).await.expect("a first request");
    tx
}

pub async fn h2c(addr: std::net::SocketAddr) -> H2Client {
    h2_over(TcpStream::connect(addr).await.expect("connect")).await
}

/// An extended CONNECT to `path`; the response and, on 200, the socket on its stream.
pub async fn open_h2(
    tx: &mut H2Client,
    path: &str,
    protocol: &'static str,
    headers: &[(&str, &str)],
) -> (http::Response<hyper::body::Incoming>, Option<H2Socket>) {
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://localhost{path}"));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let mut req = req.body(Empty::new()).unwrap();
    req.extensions_mut().insert(Protocol::from_static(protocol));
    let mut res = tx.send_request(req).await.expect("response");
    if res.status() != http::StatusCode::OK {
        return (res, None);
    }
    let upgraded = hyper::upgrade::on(&mut res).await.expect("upgraded stream");
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    (res, Some(ws))
}

pub async fn open_ws(tx: &mut H2Client, path: &str) -> H2Socket {
    let (res, ws) = open_h2(tx, path, "websocket", &[("sec-websocket-version", "13")]).await;
    assert_eq!(res.status(), 200);
    ws.expect("socket")
}
