//! Protocol conformance over real sockets, raw bytes where the case needs them: Host rules
//! (RFC 9112 section 3.2, RFC 9113 section 8.3.1), the `*` target, protocol selection by TLS
//! ALPN (an invalid preface after `h2` gets a GOAWAY), and the log line of each rejection.
mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use conduit_core::{Handler, IntoResponse, Request};
#[cfg(feature = "tls")]
use conduit_server::TlsConfig;
use http_body_util::Full;
#[cfg(feature = "tls")]
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

/// Answers with the `Host` header the handler sees (or "-"), then the URI's authority.
fn echo_host() -> impl Handler {
    |req: Request| async move {
        let host = req
            .headers()
            .get_all("host")
            .iter()
            .map(|v| v.to_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(",");
        let authority = req.uri().authority().map_or("-".into(), |a| a.to_string());
        format!("host={host} authority={authority}").into_response()
    }
}

/// The body of a raw HTTP/1 reply.
fn body_of(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

async fn raw_close(addr: std::net::SocketAddr, head: &str) -> String {
    raw(addr, head.as_bytes(), T).await
}

#[tokio::test]
async fn http1_host_rules() {
    let srv = start(config(), echo_host()).await;
    let a = srv.addr;

    // missing, duplicate, invalid: 400, and the connection is closed
    for req in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n\r\n",
        // another field between the two, and Host after other fields
        "GET / HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\nHost: a.example\r\n\r\n",
        "GET / HTTP/1.1\r\nAccept: */*\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        "GET / HTTP/1.1\r\nAccept: */*\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nAccept: */*\r\nAccept: */*\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example/path\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:http\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@a.example\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    ] {
        let reply = raw_close(a, req).await;
        assert_eq!(status_of(&reply), 400, "{req:?} -> {reply}");
        assert!(
            reply.to_ascii_lowercase().contains("connection: close"),
            "{reply}"
        );
        assert!(body_of(&reply).starts_with("Bad Request: "), "{reply}");
    }

    // valid
    let reply = raw_close(
        a,
        "GET / HTTP/1.1\r\nHost: a.example:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert_eq!(body_of(&reply), "host=a.example:8080 authority=-");
    let reply = raw_close(
        a,
        "GET / HTTP/1.1\r\nHost: [::1]:1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    // Host after other fields, and beside a field that repeats
    for req in [
        "GET / HTTP/1.1\r\nAccept: */*\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example\r\nAccept: a/b\r\nAccept: c/d\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nAccept: a/b\r\nAccept: c/d\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    ] {
        let reply = raw_close(a, req).await;
        assert_eq!(status_of(&reply), 200, "{req:?} -> {reply}");
        assert_eq!(body_of(&reply), "host=a.example authority=-", "{req:?}");
    }

    // HTTP/1.0 may omit Host
    let reply = raw_close(a, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert_eq!(body_of(&reply), "host= authority=-");

    // absolute form: the target's authority wins over Host, and the handler sees it
    let reply = raw_close(
        a,
        "GET http://a.example:8080/p HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert_eq!(
        body_of(&reply),
        "host=a.example:8080 authority=a.example:8080"
    );
    let reply = raw_close(a, "GET http://a.example/p HTTP/1.0\r\n\r\n").await;
    assert_eq!(body_of(&reply), "host=a.example authority=a.example");

    // a kept-alive connection keeps working after valid requests
    assert_eq!(get(a, "/").await.0, 200);
}

#[tokio::test]
async fn h2_authority_and_host() {
    let srv = start(config(), echo_host()).await;
    let mut h2 = h2_client(srv.addr).await;
    let req = |uri: &str, host: Option<&str>| {
        let mut r = http::Request::get(uri);
        if let Some(h) = host {
            r = r.header("host", h);
        }
        r.body(Full::new(Bytes::new())).unwrap()
    };
    // :authority alone, and a Host that names the same origin
    let (s, _, b) = send(&mut h2, req("http://a.example/", None)).await;
    assert_eq!(
        (s.as_u16(), &b[..]),
        (200, &b"host= authority=a.example"[..])
    );
    let (s, _, _) = send(&mut h2, req("http://a.example/", Some("A.example:80"))).await;
    assert_eq!(s, 200);
    // a Host naming another origin is malformed (RFC 9113 section 8.3.1)
    let (s, _, b) = send(&mut h2, req("http://a.example/", Some("b.example"))).await;
    assert_eq!(s, 400, "{b:?}");
    let (s, _, _) = send(&mut h2, req("http://a.example/", Some("a.example:81"))).await;
    assert_eq!(s, 400);
    let (s, _, _) = send(&mut h2, req("http://a.example/", Some("a b"))).await;
    assert_eq!(s, 400);
    // the connection carries on
    let (s, _, _) = send(&mut h2, req("http://a.example/", None)).await;
    assert_eq!(s, 200);
}

/// Raw HTTP/2 frames: a request with neither `:authority` nor `Host` is 400.
#[tokio::test]
async fn h2_without_authority_or_host_is_400() {
    let srv = start(config(), echo_host()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
    // :method GET (static 2), :scheme http (6), :path / (4); END_HEADERS | END_STREAM
    s.write_all(&frame(0x1, 0x4 | 0x1, 1, &[0x82, 0x86, 0x84]))
        .await
        .unwrap();
    let status = loop {
        let (ty, _, id, payload) = read_frame(&mut s).await;
        if ty == 0x1 && id == 1 {
            break payload;
        }
    };
    // the first header of the response block: ":status 400" is static index 12 (0x8c)
    assert_eq!(status[0], 0x8c, "{status:?}");
}

#[tokio::test]
async fn asterisk_target() {
    let srv = start(config(), app()).await;
    let reply = raw_close(
        srv.addr,
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    let lower = reply.to_ascii_lowercase();
    assert!(
        lower.contains("allow: get, head, post, put, delete, patch, options\r\n"),
        "{reply}"
    );
    assert!(lower.contains("content-length: 0\r\n"), "{reply}");
    assert_eq!(body_of(&reply), "");

    for method in ["GET", "POST", "DELETE", "HEAD"] {
        let reply = raw_close(srv.addr, &format!("{method} * HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        assert_eq!(status_of(&reply), 400, "{method} -> {reply}");
    }
    // OPTIONS * still needs a Host in HTTP/1.1
    let reply = raw_close(srv.addr, "OPTIONS * HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&reply), 400, "{reply}");

    // over h2c, with curl
    let url = format!("http://{}/", srv.addr);
    let out = tokio::task::spawn_blocking(move || {
        let run = |method: &str| {
            std::process::Command::new("curl")
                .args(["-sS", "-i", "--http2-prior-knowledge", "-X", method])
                .args(["--request-target", "*", &url])
                .output()
                .expect("curl")
        };
        (run("OPTIONS"), run("GET"))
    })
    .await
    .unwrap();
    let options = String::from_utf8_lossy(&out.0.stdout).to_ascii_lowercase();
    assert!(options.starts_with("http/2 200"), "{options}");
    assert!(
        options.contains("allow: get, head, post, put, delete, patch, options"),
        "{options}"
    );
    let get = String::from_utf8_lossy(&out.1.stdout).to_ascii_lowercase();
    assert!(get.starts_with("http/2 400"), "{get}");
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn alpn_h2_with_an_invalid_preface_gets_goaway_protocol_error() {
    let (logs, _guard) = Logs::capture();
    let cert = make_cert("preface");
    let srv = start(
        config().tls(TlsConfig::from_pem_files(&cert.cert, &cert.key)),
        app(),
    )
    .await;
    let all = rustls::ALL_VERSIONS;
    let mut tls = connect(srv.addr, client_config(&cert, &[b"h2"], all))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (ty, _, stream, _) = read_frame(&mut tls).await;
    assert_eq!(
        (ty, stream),
        (0x4, 0),
        "the server preface (SETTINGS) comes first"
    );
    let (ty, _, stream, payload) = read_frame(&mut tls).await;
    assert_eq!((ty, stream), (0x7, 0), "then GOAWAY on stream 0");
    let last_stream = u32::from_be_bytes(payload[0..4].try_into().unwrap()) & 0x7fff_ffff;
    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
    assert_eq!(last_stream, 0);
    assert_eq!(code, 0x1, "PROTOCOL_ERROR");
    assert!(try_read_frame(&mut tls).await.is_none(), "then the close");
    let text = logs.text();
    assert!(
        text.contains("ALPN h2 but no HTTP/2 preface (GOAWAY PROTOCOL_ERROR)"),
        "{text}"
    );

    // a valid preface on ALPN h2 is served as usual
    let tls = connect(srv.addr, client_config(&cert, &[b"h2"], all))
        .await
        .unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (s, _, b) = send(
        &mut tx,
        http::Request::get("https://localhost/version")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"HTTP/2.0"[..]));
}

/// A connection that negotiated `http/1.1` (or no ALPN) is HTTP/1.1 only: the HTTP/2 preface
/// is not an upgrade, it is a malformed HTTP/1.1 request.
#[cfg(feature = "tls")]
#[tokio::test]
async fn http11_over_tls_is_never_upgraded_to_h2() {
    let cert = make_cert("h1only");
    let srv = start(
        config().tls(TlsConfig::from_pem_files(&cert.cert, &cert.key)),
        app(),
    )
    .await;
    let (logs, _guard) = Logs::capture();
    let all = rustls::ALL_VERSIONS;
    let alpns: [&[&[u8]]; 2] = [&[b"http/1.1"], &[]];
    for alpn in alpns {
        let mut tls = connect(srv.addr, client_config(&cert, alpn, all))
            .await
            .unwrap();
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        tls.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(T, tls.read_to_end(&mut out)).await;
        // hyper closes without a response (it sees the HTTP/2 preface); never an h2 frame
        let reply = String::from_utf8_lossy(&out);
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
            "{alpn:?}: {reply:?}"
        );

        // and an HTTP/1.1 request with an h2c upgrade offer stays HTTP/1.1
        let mut tls = connect(srv.addr, client_config(&cert, alpn, all))
            .await
            .unwrap();
        tls.write_all(
            b"GET /version HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
              Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(T, tls.read_to_end(&mut out)).await;
        let reply = String::from_utf8_lossy(&out);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
        assert!(reply.ends_with("HTTP/1.1"), "{reply:?}");
    }
    let text = logs.text();
    assert_eq!(
        text.matches("HTTP/2 preface on an HTTP/1.1-only connection")
            .count(),
        2,
        "{text}"
    );
}

/// Each early rejection logs its own status and reason with the peer address.
#[tokio::test]
async fn rejections_are_logged_with_status_reason_and_peer() {
    let (logs, _guard) = Logs::capture();
    let srv = start(
        config()
            .max_header_bytes(256 * 1024)
            .max_body_bytes(16)
            .read_timeout(Duration::from_millis(300)),
        app(),
    )
    .await;

    async fn send_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> (String, String) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let me = s.local_addr().unwrap().to_string();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
        (String::from_utf8_lossy(&out).into_owned(), me)
    }

    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let (reply, me_414) = send_raw(srv.addr, long.as_bytes()).await;
    assert_eq!(status_of(&reply), 414, "{reply}");

    // Well past the 256 KiB limit: hyper checks it when a parse comes up short, and one read
    // can run past it (into the room its buffer grew to), so a head up to about twice the
    // limit may complete first depending on how the bytes arrive.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let (reply, me_431) = send_raw(srv.addr, big.as_bytes()).await;
    assert_eq!(status_of(&reply), 431, "{reply}");

    let (reply, me_host) = send_raw(srv.addr, b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&reply), 400, "{reply}");

    let (reply, me_star) = send_raw(srv.addr, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&reply), 400, "{reply}");

    let (reply, me_bad) = send_raw(srv.addr, b"NOT HTTP\r\n\r\n").await;
    assert_eq!(status_of(&reply), 400, "{reply}");

    let (reply, me_413) = send_raw(
        srv.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 413, "{reply}");

    let (reply, me_408) = send_raw(
        srv.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\nab",
    )
    .await;
    assert_eq!(status_of(&reply), 408, "{reply}");

    let text = logs.text();
    let line_with = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?} in:\n{text}"))
            .to_owned()
    };
    let l = line_with("URI too long (414)");
    assert!(l.contains(&me_414) && l.contains("status=414"), "{l}");
    assert!(
        !text.contains(&format!("peer={me_414} status=431")),
        "{text}"
    );
    let l = line_with("headers too large (431)");
    assert!(l.contains(&me_431) && l.contains("status=431"), "{l}");
    let l = line_with("missing Host header (400)");
    assert!(l.contains(&me_host) && l.contains("status=400"), "{l}");
    let l = line_with("only allowed with OPTIONS (400)");
    assert!(l.contains(&me_star), "{l}");
    let l = line_with("larger than max_body_bytes (413)");
    assert!(l.contains(&me_413) && l.contains("status=413"), "{l}");
    let l = line_with("within read_timeout (408)");
    assert!(l.contains(&me_408) && l.contains("status=408"), "{l}");
    let l = line_with("rejected malformed request (400)");
    assert!(l.contains(&me_bad) && l.contains("status=400"), "{l}");
}
