//! Zero-copy file bodies over real sockets: on plain-text HTTP/1.1 a cached file goes out with
//! `sendfile` (whole, in ranges, pipelined, to a slow reader, through observing middleware),
//! and everywhere it must not (TLS, HTTP/2, a body a middleware transforms, pages not in the
//! page cache) the file is read as before. Every test compares every byte received with the
//! file: a placeholder's bytes reaching a client would show as a mismatch.
#![cfg(target_os = "linux")]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use conduit::middleware::{Compression, Logging, Recovery, Timeout};
use conduit::{HandlerExt, ServeDir, TlsConfig};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests read one process-wide counter: one test at a time (also under `cargo test`).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LEN: usize = 3 * 1024 * 1024 + 17;

/// Bytes with no zero among them (a placeholder's bytes are zeros).
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 + 1).collect()
}

/// A fresh folder with `big.bin`, LEN bytes of `content`; the folder and the bytes.
fn big_file(tag: &str) -> (TempDir, Vec<u8>) {
    let dir = TempDir::new(tag);
    let file = content(LEN);
    dir.write("big.bin", &file);
    (dir, file)
}

fn sent() -> u64 {
    conduit::sendfile::bytes_sent()
}

async fn serve(dir: &TempDir) -> SocketAddr {
    init_tracing();
    start(config(), ServeDir::new(dir.path())).await.addr
}

/// One HTTP/1.1 response read off a raw connection: status, headers (lowercase), body.
async fn read_response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed in the head");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (status, head, body)
}

/// A connection with a 4 KiB receive buffer that has sent `GET path`: the server's writes to it
/// go out a little at a time.
async fn small_window_get(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn plain_http1_sends_a_cached_file_and_its_ranges_with_sendfile() {
    let _one = SERIAL.lock().await;
    let (dir, file) = big_file("sendfile-plain");
    let addr = serve(&dir).await;
    let mut c = Client::new(addr).await;

    let before = sent();
    let r = c.get("/big.bin").await;
    assert_eq!(r.status, 200);
    assert!(r.body == file, "the body differs from the file");
    assert_eq!(
        sent() - before,
        LEN as u64,
        "not every byte went by sendfile"
    );

    let before = sent();
    let r = c
        .req("GET", "/big.bin", &[("range", "bytes=1048570-2097160")])
        .await;
    assert_eq!(r.status, 206);
    assert!(r.body[..] == file[1_048_570..=2_097_160]);
    assert_eq!(sent() - before, 1_048_591);

    // Multipart ranges: the part headers are written, the spans sent.
    let before = sent();
    let r = c
        .req("GET", "/big.bin", &[("range", "bytes=0-9, 3000000-")])
        .await;
    assert_eq!(r.status, 206);
    let body = &r.body[..];
    assert!(body.windows(10).any(|w| w == &file[..10]));
    let tail = &file[3_000_000..];
    assert!(body.windows(tail.len()).any(|w| w == tail));
    assert_eq!(sent() - before, 10 + tail.len() as u64);

    // A file the hot-file cache holds in memory goes out from the page cache too.
    let held = content(200 * 1024);
    dir.write("held.bin", &held);
    let before = sent();
    let r = c.get("/held.bin").await;
    assert!(r.status == 200 && r.body == held);
    let r = c.req("GET", "/held.bin", &[("range", "bytes=100-")]).await;
    assert!(r.status == 206 && r.body[..] == held[100..]);
    assert_eq!(sent() - before, 2 * held.len() as u64 - 100);

    // HEAD sends nothing.
    let before = sent();
    let r = c.req("HEAD", "/big.bin", &[]).await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    assert_eq!(sent(), before);
}

#[tokio::test]
async fn pipelined_requests_and_a_slow_reader_get_every_byte() {
    let _one = SERIAL.lock().await;
    let (dir, file) = big_file("sendfile-pipelined");
    dir.write("small.txt", "small");
    let addr = serve(&dir).await;

    // Three requests in one write: file, small file, file again.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=5-\r\n\r\n",
    )
    .await
    .unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert!(status == 200 && body == file);
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!((status, &body[..]), (200, &b"small"[..]));
    let (status, _, body) = read_response(&mut s).await;
    assert!(status == 206 && body[..] == file[5..]);

    // A client with a small receive buffer that reads in small pieces, pausing: the server's
    // sendfile calls send part of a span at a time.
    let mut s = small_window_get(addr, "/big.bin").await;
    let before = sent();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut reads = 0;
    while got.len() < 256 * 1024 {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut body = got.split_off(split);
    while body.len() < LEN {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {} bytes", body.len());
        body.extend_from_slice(&buf[..n]);
    }
    assert!(body == file, "the slow reader's body differs from the file");
    assert_eq!(sent() - before, LEN as u64);
}

#[tokio::test]
async fn observing_middleware_keeps_sendfile_and_a_transforming_one_reads_the_file() {
    let _one = SERIAL.lock().await;
    init_tracing();
    let (dir, file) = big_file("sendfile-middleware");
    let text: String = (0..LEN / 40).map(|i| format!("line {i:>33}\n")).collect();
    dir.write("big.txt", &text);

    let observed = ServeDir::new(dir.path())
        .with(Timeout::new(Duration::from_secs(30)))
        .with(Recovery::new())
        .with(Logging::new());
    let addr = start(config(), observed).await.addr;
    let before = sent();
    let r = Client::new(addr).await.get("/big.bin").await;
    assert!(r.status == 200 && r.body == file);
    assert_eq!(sent() - before, LEN as u64, "observers must keep sendfile");

    let compressed = ServeDir::new(dir.path()).with(Compression::new());
    let addr = start(config(), compressed).await.addr;
    let before = sent();
    let r = Client::new(addr)
        .await
        .req("GET", "/big.txt", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut plain)
        .unwrap();
    assert!(plain == text, "the compressed body is not the file's");
    assert_eq!(sent(), before, "a transformed body must be read, not sent");

    // A file the hot-file cache holds in memory is still a body in memory to the middleware:
    // compressed at once and sent with its length, as without zero-copy.
    let held: String = text[..200 * 1024].to_owned();
    dir.write("held.txt", &held);
    let r = Client::new(addr)
        .await
        .req("GET", "/held.txt", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut plain)
        .unwrap();
    assert!(plain == held, "the compressed body is not the file's");
}

#[tokio::test]
async fn tls_and_http2_read_the_file() {
    let _one = SERIAL.lock().await;
    init_tracing();
    let (dir, file) = big_file("sendfile-tls");
    let cert = make_cert("sendfile");
    let tls = config().tls(TlsConfig::from_pem_files(&cert.cert, &cert.key));
    let tls_addr = start(tls, ServeDir::new(dir.path())).await.addr;
    let plain_addr = serve(&dir).await;
    let before = sent();

    for alpn in [&b"http/1.1"[..], b"h2"] {
        let stream = connect(
            tls_addr,
            client_config(&cert, &[alpn], rustls::ALL_VERSIONS),
        )
        .await
        .unwrap();
        let req = || {
            http::Request::get("https://localhost/big.bin")
                .header("host", "localhost")
                .body(empty())
                .unwrap()
        };
        let res = if alpn == b"h2" {
            let (mut tx, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            tx.send_request(req()).await.unwrap()
        } else {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            tx.send_request(req()).await.unwrap()
        };
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(body == file, "TLS body differs");
    }

    let held = content(200 * 1024);
    dir.write("held.bin", &held);
    let mut h2 = h2_client(plain_addr).await;
    let r = send(&mut h2, get_req("/big.bin")).await;
    assert!(r.status == 200 && r.body == file, "h2c body differs");
    let r = send(&mut h2, get_req("/held.bin")).await;
    assert!(r.status == 200 && r.body == held, "h2c body differs");
    assert_eq!(sent(), before, "TLS and HTTP/2 must not use sendfile");
}

#[tokio::test]
async fn pages_not_in_the_page_cache_are_read_on_a_blocking_thread() {
    let _one = SERIAL.lock().await;
    let dir = TempDir::new("sendfile-cold");
    let file = content(LEN);
    let path = dir.write("big.bin", &file);
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    // posix_fadvise(DONTNEED) on the whole file: its clean pages leave the page cache.
    let dd = std::process::Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .unwrap();
    assert!(dd.success());
    let addr = serve(&dir).await;
    let before = sent();
    let r = Client::new(addr).await.get("/big.bin").await;
    assert!(r.status == 200 && r.body == file);
    assert!(
        sent() - before < LEN as u64,
        "a cold file's first span must be read, not sent"
    );
}

#[tokio::test]
async fn a_file_that_shrinks_mid_response_ends_it_short_of_its_length() {
    let _one = SERIAL.lock().await;
    let dir = TempDir::new("sendfile-shrink");
    let len = 8 * 1024 * 1024;
    let file = content(len);
    let path = dir.write("big.bin", &file);
    let addr = serve(&dir).await;

    let mut s = small_window_get(addr, "/big.bin").await;
    let mut got = vec![0u8; 64 * 1024];
    s.read_exact(&mut got).await.unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1024 * 1024)
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await; // EOF or reset
        rest
    })
    .await
    .expect("the connection must end");
    got.extend_from_slice(&rest);
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &got[split..];
    assert!(
        body.len() < len,
        "a shrunk file cannot fill its Content-Length"
    );
    // What the file still holds arrives as it is. Past its new end the kernel sends what it
    // had queued, which truncation zeroes: the response is cut short of its Content-Length, so
    // the client knows it is incomplete (nginx's sendfile behaves the same).
    let kept = body.len().min(1024 * 1024);
    assert!(
        body[..kept] == file[..kept],
        "bytes other than the file's were sent"
    );
}
