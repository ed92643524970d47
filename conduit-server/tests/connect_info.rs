//! `ConnectInfo` as a handler sees it, over real sockets: HTTP/1.1 (every request of a
//! kept-alive connection), h2c (concurrent streams of one connection) and TLS (ALPN and SNI),
//! each with the client's real ephemeral port.
mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use conduit_core::{Handler, IntoResponse, Request, RequestExt};
#[cfg(feature = "tls")]
use conduit_server::TlsConfig;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// What the request's `ConnectInfo` says, or "none".
fn describe(req: &Request) -> String {
    match req.connect_info() {
        Some(i) => format!(
            "peer={} local={} tls={} alpn={} sni={}",
            i.peer_addr(),
            i.local_addr(),
            i.is_tls(),
            i.alpn()
                .map_or("-".into(), |a| String::from_utf8_lossy(a).into_owned()),
            i.server_name().unwrap_or("-"),
        ),
        None => "none".into(),
    }
}

/// Answers with what the request's `ConnectInfo` says, read in the handler's call (where
/// middleware read it) and again when its future runs, after a yield: the two must agree.
fn echo_info() -> impl Handler {
    |req: Request| {
        let at_call = describe(&req);
        async move {
            tokio::task::yield_now().await;
            let at_poll = describe(&req);
            if at_call == at_poll {
                at_poll.into_response()
            } else {
                format!("call and poll differ: {at_call} / {at_poll}").into_response()
            }
        }
    }
}

fn plain(peer: SocketAddr, local: SocketAddr) -> String {
    format!("peer={peer} local={local} tls=false alpn=- sni=-")
}

fn request(uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(uri)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn http1_every_request_of_a_kept_alive_connection() {
    let srv = start(config(), echo_info()).await;
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let me = tcp.local_addr().unwrap();
    assert_ne!(me.port(), srv.addr.port());
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let (status, _, body) = send(&mut tx, request("/")).await;
        assert_eq!(status, 200);
        assert_eq!(body, plain(me, srv.addr));
    }
    // another connection, another port
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let me2 = tcp.local_addr().unwrap();
    assert_ne!(me2, me);
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(send(&mut tx, request("/")).await.2, plain(me2, srv.addr));
}

#[tokio::test]
async fn h2c_every_stream_of_a_multiplexed_connection() {
    let srv = start(config(), echo_info()).await;
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let me = tcp.local_addr().unwrap();
    let (tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let streams = (0..8).map(|_| {
        let mut tx = tx.clone();
        tokio::spawn(async move { send(&mut tx, request("http://localhost/")).await })
    });
    for s in streams.collect::<Vec<_>>() {
        let (status, _, body) = s.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, plain(me, srv.addr));
    }
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn tls_carries_alpn_and_sni() {
    let cert = make_cert("connect-info");
    let srv = start(
        config().tls(TlsConfig::from_pem_files(&cert.cert, &cert.key)),
        echo_info(),
    )
    .await;
    let all = rustls::ALL_VERSIONS;

    // ALPN h2: HTTP/2, two streams
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let me = tcp.local_addr().unwrap();
    let tls = connect_over(tcp, client_config(&cert, &[b"h2", b"http/1.1"], all))
        .await
        .unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let want = format!(
        "peer={me} local={} tls=true alpn=h2 sni=localhost",
        srv.addr
    );
    for _ in 0..2 {
        assert_eq!(send(&mut tx, request("https://localhost/")).await.2, want);
    }

    // ALPN http/1.1
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let me = tcp.local_addr().unwrap();
    let tls = connect_over(tcp, client_config(&cert, &[b"http/1.1"], all))
        .await
        .unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let want = format!(
        "peer={me} local={} tls=true alpn=http/1.1 sni=localhost",
        srv.addr
    );
    for _ in 0..2 {
        assert_eq!(send(&mut tx, request("/")).await.2, want);
    }

    // no ALPN at all: HTTP/1.1, alpn None
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let me = tcp.local_addr().unwrap();
    let tls = connect_over(tcp, client_config(&cert, &[], all))
        .await
        .unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let want = format!("peer={me} local={} tls=true alpn=- sni=localhost", srv.addr);
    assert_eq!(send(&mut tx, request("/")).await.2, want);
}
