//! Every bad input gets a clear status or a closed connection, never a panic: malformed
//! requests, oversized headers and bodies, slow clients, silent clients, too many streams.
mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn malformed_request_line_is_400() {
    init_tracing();
    let srv = start(config(), app()).await;
    let reply = raw(
        srv.addr,
        b"THIS IS NOT HTTP\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    let reply = raw(
        srv.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    let reply = raw(
        srv.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    // the server is fine afterwards
    assert_eq!(get(srv.addr, "/").await.0, 200);
}

#[tokio::test]
async fn headers_over_the_limit_are_431() {
    let srv = start(config().max_header_bytes(16 * 1024), app()).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let reply = raw(srv.addr, big.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&reply), 431, "{reply}");
    // just under the limit is fine
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    assert_eq!(
        status_of(&raw(srv.addr, ok.as_bytes(), Duration::from_secs(5)).await),
        200
    );
}

#[tokio::test]
async fn too_many_headers_are_431() {
    let srv = start(config().max_headers(20), app()).await;
    let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..40 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    assert_eq!(
        status_of(&raw(srv.addr, req.as_bytes(), Duration::from_secs(5)).await),
        431
    );
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let srv = start(config().max_body_bytes(1024), app()).await;
    // declared too large: refused before reading
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n{}",
        "a".repeat(4096)
    );
    let reply = raw(srv.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&reply), 413, "{reply}");
    // chunked, growing past the limit while streaming
    let mut req =
        String::from("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..4 {
        req.push_str(&format!("400\r\n{}\r\n", "b".repeat(1024)));
    }
    req.push_str("0\r\n\r\n");
    let reply = raw(srv.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&reply), 413, "{reply}");
    // within the limit it echoes
    let req =
        "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
    let reply = raw(srv.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("hello"),
        "{reply}"
    );
}

#[tokio::test]
async fn slow_body_hits_the_read_timeout_with_408() {
    let srv = start(config().read_timeout(Duration::from_millis(400)), app()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-ten!!")
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("answered")
        .unwrap();
    let reply = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&reply), 408, "{reply}");
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "too early: {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_while_others_are_served() {
    init_tracing();
    let header_timeout = Duration::from_millis(1000);
    let srv = start(config().header_read_timeout(header_timeout), app()).await;
    let addr = srv.addr;
    let loris = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let t0 = Instant::now();
        for b in b"GET / HTTP/1.1\r\nHost: slow\r\nX-Drip: "
            .iter()
            .chain(std::iter::repeat(&b'a'))
        {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            // did the server hang up?
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
            if t0.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        t0.elapsed()
    });
    // meanwhile, normal clients are served promptly
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(addr, "/").await.0, 200);
        assert!(t.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut = loris.await.unwrap();
    assert!(
        cut >= header_timeout - Duration::from_millis(50),
        "cut too early: {cut:?}"
    );
    assert!(cut < header_timeout * 3, "slow client not cut off: {cut:?}");
}

#[tokio::test]
async fn slow_headers_on_a_keep_alive_connection_are_cut_off_too() {
    let srv = start(
        config().header_read_timeout(Duration::from_millis(500)),
        app(),
    )
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // second request trickles in
    let t0 = Instant::now();
    s.write_all(b"GET / HT").await.unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)).await,
        "not closed"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_never_sends_a_byte_is_closed() {
    let srv = start(
        config().header_read_timeout(Duration::from_millis(300)),
        app(),
    )
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let t0 = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)).await,
        "silent client kept open"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    assert!(eventually(Duration::from_secs(1), || srv.handle.connections() == 0).await);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let srv = start(config().idle_timeout(Duration::from_millis(300)), app()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t0 = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)).await,
        "idle connection kept open"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_hits_the_write_timeout() {
    // an endless response; the client reads the head and then nothing
    let endless = |_req: conduit_core::Request| async {
        let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures_stream(chunk);
        conduit_core::Body::from_stream(stream)
    };
    let srv = start(config().write_timeout(Duration::from_millis(500)), endless).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let _ = s.read(&mut buf).await.unwrap();
    assert_eq!(srv.handle.connections(), 1);
    // stop reading: the socket buffers fill, the server's writes stall, it must give up
    assert!(
        eventually(Duration::from_secs(10), || srv.handle.connections() == 0).await,
        "server kept writing to a client that stopped reading"
    );
}

/// A streaming body: `small` chunks of 5 bytes 20 ms apart (long enough for the watchdog to
/// see a response in progress and stop its tick), then, if `then_endless`, 64 KiB chunks as
/// fast as they are taken, else the end.
fn slow_then(small: usize, then_endless: bool) -> conduit_core::Body {
    struct Slow {
        every: tokio::time::Interval,
        left: usize,
        endless: bool,
    }
    impl futures_core::Stream for Slow {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.left == 0 {
                let big = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                return std::task::Poll::Ready(self.endless.then_some(Ok(big)));
            }
            std::task::ready!(self.every.poll_tick(cx));
            self.left -= 1;
            std::task::Poll::Ready(Some(Ok(bytes::Bytes::from_static(b"tick\n"))))
        }
    }
    conduit_core::Body::from_stream(Slow {
        every: tokio::time::interval(Duration::from_millis(20)),
        left: small,
        endless: then_endless,
    })
}

fn ticks(got: &[u8]) -> usize {
    got.windows(5).filter(|w| w == b"tick\n").count()
}

/// `GET /` on a new connection, reading until `done` holds for what arrived; the server must
/// not close the connection before.
async fn get_until(
    addr: std::net::SocketAddr,
    done: impl Fn(&[u8]) -> bool,
) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1024];
    while !done(&got) {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed while the stream was flowing");
        got.extend_from_slice(&buf[..n]);
    }
    (s, got)
}

#[tokio::test]
async fn a_stream_that_stalls_after_a_while_hits_the_write_timeout() {
    // The watchdog parks while the first 20 chunks flow (400 ms, four of its ticks), then the
    // client stops reading and the server's writes stall.
    let handler = |_req: conduit_core::Request| async { slow_then(20, true) };
    let srv = start(config().write_timeout(Duration::from_millis(300)), handler).await;
    let (_s, _) = get_until(srv.addr, |got| ticks(got) >= 20).await;
    assert_eq!(srv.handle.connections(), 1);
    assert!(
        eventually(Duration::from_secs(10), || srv.handle.connections() == 0).await,
        "server kept a stalled stream open"
    );
}

#[tokio::test]
async fn after_a_long_stream_ends_the_idle_timeout_applies() {
    // The stream outlasts the idle limit (a response in progress has none), then ends; the
    // connection, idle from then on, must be closed by the idle limit.
    let handler = |_req: conduit_core::Request| async { slow_then(25, false) };
    let srv = start(config().idle_timeout(Duration::from_millis(200)), handler).await;
    let (mut s, got) = get_until(srv.addr, |got| got.ends_with(b"0\r\n\r\n")).await;
    assert_eq!(ticks(&got), 25);
    let t0 = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)).await,
        "idle connection kept open after its stream ended"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t0.elapsed()
    );
}

fn futures_stream(
    chunk: bytes::Bytes,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    struct Repeat(bytes::Bytes);
    impl futures_core::Stream for Repeat {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(Some(Ok(self.0.clone())))
        }
    }
    Repeat(chunk)
}

#[tokio::test]
async fn connections_over_the_limit_wait_until_one_closes() {
    let srv = start(config().max_connections(1), app()).await;
    let mut first = h1_client(srv.addr).await;
    assert_eq!(send(&mut first, common_req("/")).await.0, 200);
    let addr = srv.addr;
    let second = tokio::spawn(async move { get(addr, "/").await.0 });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "second connection served while the limit was reached"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("served after close")
        .unwrap();
    assert_eq!(status, 200);
}

fn common_req(path: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(path)
        .header("host", "x")
        .body(Default::default())
        .unwrap()
}

/// Hand-written HTTP/2 frames: a client that ignores SETTINGS_MAX_CONCURRENT_STREAMS.
#[tokio::test]
async fn h2_streams_over_the_limit_are_refused() {
    let srv = start(config().http2_max_concurrent_streams(2), app()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&frame(0x4, 0, 0, &[])).await.unwrap(); // our SETTINGS (empty)
    // read the server's SETTINGS, then ACK it so its limit is in force
    let mut got_settings = false;
    while !got_settings {
        let (ty, flags, _, _) = read_frame(&mut s).await;
        if ty == 0x4 && flags & 0x1 == 0 {
            got_settings = true;
        }
    }
    s.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
    // open three streams whose handlers sleep
    for id in [1u32, 3, 5] {
        // :method GET (idx 2), :scheme http (idx 6), :path literal "/sleep/1000", :authority literal "x"
        let mut block = vec![0x82, 0x86];
        block.push(0x04); // literal without indexing, name idx 4 (:path)
        block.push(11);
        block.extend_from_slice(b"/sleep/1000");
        block.extend_from_slice(&[0x01, 1, b'x']); // :authority
        s.write_all(&frame(0x1, 0x4 | 0x1, id, &block))
            .await
            .unwrap(); // END_HEADERS | END_STREAM
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refused = None;
    while Instant::now() < deadline {
        let (ty, _, id, payload) = read_frame(&mut s).await;
        if ty == 0x3 {
            refused = Some((id, u32::from_be_bytes(payload[..4].try_into().unwrap())));
            break;
        }
    }
    assert_eq!(
        refused,
        Some((5, 0x7)),
        "expected RST_STREAM(REFUSED_STREAM) on stream 5"
    );
}

/// The server PINGs a silent HTTP/2 peer and closes the connection when no PING ACK comes.
#[tokio::test]
async fn h2_keep_alive_ping_closes_a_dead_peer() {
    let srv = start(
        config()
            .http2_keep_alive_interval(Some(Duration::from_millis(200)))
            .http2_keep_alive_timeout(Duration::from_millis(300)),
        app(),
    )
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
    let t0 = Instant::now();
    let mut saw_ping = false;
    let mut acked_settings = false;
    let closed = loop {
        let next = tokio::time::timeout(Duration::from_secs(5), try_read_frame(&mut s)).await;
        let (ty, flags) = match next {
            Err(_) => break false,
            Ok(None) => break true,
            Ok(Some((ty, flags, _, _))) => (ty, flags),
        };
        match ty {
            0x4 if flags & 1 == 0 && !acked_settings => {
                acked_settings = true;
                s.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
            }
            0x6 if flags & 1 == 0 => saw_ping = true, // a PING we never answer
            0x7 => break true,                        // GOAWAY
            _ => {}
        }
    };
    assert!(saw_ping, "the server never sent a keep-alive PING");
    assert!(closed, "a peer that ignores PINGs must be disconnected");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
}

/// Hostile input, generated: random bytes and mutated requests. Every connection gets a 4xx or
/// is closed; nothing gets a 5xx, and the server keeps serving.
#[tokio::test]
async fn random_garbage_never_gets_a_5xx_and_never_stops_the_server() {
    let srv = start(
        config()
            .header_read_timeout(Duration::from_millis(300))
            .read_timeout(Duration::from_millis(300))
            .idle_timeout(Duration::from_millis(300)),
        app(),
    )
    .await;
    let valid =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let mut bytes = valid.to_vec();
        if i % 4 == 0 {
            let len = (next() % 300) as usize;
            bytes = (0..len).map(|_| next() as u8).collect();
        } else {
            for _ in 0..(1 + next() % 6) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, next() as u8),
                }
            }
        }
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            (raw(addr, &bytes, Duration::from_secs(5)).await, bytes)
        }));
    }
    for t in tasks {
        let (reply, sent) = t.await.unwrap();
        let status = status_of(&reply);
        assert!(
            reply.is_empty() || (200..500).contains(&status),
            "sent {:?}\ngot {reply:?}",
            String::from_utf8_lossy(&sent)
        );
    }
    assert_eq!(get(srv.addr, "/").await.0, 200);
}

/// Each kind of bad input leaves a log line saying what happened.
#[tokio::test]
async fn bad_input_is_logged() {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so the server's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let srv = start(
        config()
            .max_body_bytes(16)
            .max_header_bytes(8192)
            .header_read_timeout(Duration::from_millis(200)),
        app(),
    )
    .await;
    raw(srv.addr, b"NOT HTTP\r\n\r\n", Duration::from_secs(2)).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    raw(srv.addr, big.as_bytes(), Duration::from_secs(2)).await;
    raw(
        srv.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "rejected malformed request (400)",
        "rejected request: headers too large (431)",
        "status=413",
        "header read timeout",
    ] {
        assert!(
            logs.contains(expected),
            "no log line with {expected:?} in:\n{logs}"
        );
    }
}

/// The server's `max_body_bytes` is the one knob: raising it raises what the body helpers
/// (`req.bytes()`, `req.json()`, ...) accept, past their 2 MiB default.
#[tokio::test]
async fn body_helpers_follow_the_server_body_limit() {
    use conduit_core::RequestExt;
    let handler =
        |req: conduit_core::Request| async move { req.bytes().await.map(|b| b.len().to_string()) };
    let srv = start(config().max_body_bytes(4 << 20), handler).await;
    let post = |len: usize| {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n"
        );
        let mut bytes = head.into_bytes();
        bytes.resize(bytes.len() + len, b'a');
        bytes
    };
    let reply = raw(srv.addr, &post(3 << 20), Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 200, "{}", &reply[..reply.len().min(200)]);
    assert!(
        reply.ends_with(&(3usize << 20).to_string()),
        "{}",
        &reply[..reply.len().min(200)]
    );
    // declared over the limit: refused without reading, so send only the head
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        5 << 20
    );
    let reply = raw(srv.addr, head.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 413, "{}", &reply[..reply.len().min(200)]);
}
