//! TLS with ALPN over real sockets: h2 and http/1.1 negotiation, minimum version, handshake
//! timeout, and typed errors for bad certificate files.
#![cfg(feature = "tls")]
mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use conduit_server::{Server, ServerError, TlsConfig, TlsVersion};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn req() -> http::Request<Full<Bytes>> {
    http::Request::get("https://localhost/version")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http11() {
    let cert = make_cert("alpn");
    let srv = start(
        config().tls(TlsConfig::from_pem_files(&cert.cert, &cert.key)),
        app(),
    )
    .await;
    let all = rustls::ALL_VERSIONS;

    let tls = connect(srv.addr, client_config(&cert, &[b"h2", b"http/1.1"], all))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let res = tx.send_request(req()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "HTTP/2.0"
    );

    let tls = connect(srv.addr, client_config(&cert, &[b"http/1.1"], all))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = tx
        .send_request(
            http::Request::get("/version")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "HTTP/1.1"
    );
}

#[tokio::test]
async fn minimum_version_tls13_refuses_tls12_clients() {
    let cert = make_cert("min13");
    let tls = TlsConfig::from_pem_files(&cert.cert, &cert.key).min_version(TlsVersion::Tls13);
    let srv = start(config().tls(tls), app()).await;
    let only12 = client_config(&cert, &[b"http/1.1"], &[&rustls::version::TLS12]);
    assert!(
        connect(srv.addr, only12).await.is_err(),
        "TLS 1.2 client accepted"
    );
    let s = connect(
        srv.addr,
        client_config(&cert, &[b"http/1.1"], &[&rustls::version::TLS13]),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // default minimum (1.2) accepts a 1.2 client
    let srv12 = start(
        config().tls(TlsConfig::from_pem_files(&cert.cert, &cert.key)),
        app(),
    )
    .await;
    let s = connect(
        srv12.addr,
        client_config(&cert, &[b"http/1.1"], &[&rustls::version::TLS12]),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn a_stalled_handshake_is_closed() {
    let cert = make_cert("hs");
    let tls = TlsConfig::from_pem_files(&cert.cert, &cert.key)
        .handshake_timeout(Duration::from_millis(300));
    let srv = start(config().tls(tls), app()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(r, Ok(0) | Err(_)));
}

#[tokio::test]
async fn curl_negotiates_h2_over_tls() {
    let cert = make_cert("curl");
    let srv = start(
        config().tls(TlsConfig::from_pem_files(&cert.cert, &cert.key)),
        app(),
    )
    .await;
    let url = format!("https://localhost:{}/version", srv.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr.port());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-k", "--http2", "--resolve", &resolve, &url])
            .output()
            .expect("curl")
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HTTP/2.0",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn bad_certificate_files_name_the_file() {
    let cert = make_cert("bad");
    let missing = cert.dir.join("missing.pem");
    let err = Server::bind(config().tls(TlsConfig::from_pem_files(&missing, &cert.key)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::Tls {
                what: "certificate",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let garbage = cert.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a pem file").unwrap();
    let err = Server::bind(config().tls(TlsConfig::from_pem_files(&garbage, &cert.key)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("garbage.pem"), "{err}");
    let err = Server::bind(config().tls(TlsConfig::from_pem_files(&cert.cert, &garbage)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::Tls {
                what: "private key",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("garbage.pem"), "{err}");
}

#[tokio::test]
async fn bind_and_config_errors_are_typed() {
    let srv = start(config(), app()).await;
    let err = Server::bind(conduit_server::Config::new(srv.addr.to_string()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&srv.addr.to_string()), "{err}");

    let err = Server::bind(conduit_server::Config::new("not an address"))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::Address { .. }), "{err}");
    assert!(err.to_string().contains("not an address"), "{err}");

    let err = Server::bind(config().max_connections(0)).await.unwrap_err();
    assert!(
        matches!(err, ServerError::Config(_)) && err.to_string().contains("max_connections"),
        "{err}"
    );
    let err = Server::bind(config().idle_timeout(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("idle_timeout"), "{err}");
}
