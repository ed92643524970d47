//! HTTP/1.1 keep-alive and pipelining, h2c prior knowledge, panics, over real sockets.
mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;

fn req(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn http1_keep_alive_reuses_one_connection() {
    let srv = start(config(), app()).await;
    let mut c = h1_client(srv.addr).await;
    for _ in 0..3 {
        let (status, headers, body) = send(&mut c, req("/")).await;
        assert_eq!(status, 200);
        assert_eq!(body, "Hello, World!");
        assert_eq!(headers["content-length"], "13");
        assert!(headers.get("connection").is_none());
    }
    assert_eq!(srv.handle.connections(), 1);
}

#[tokio::test]
async fn http1_pipelined_requests_are_answered_in_order() {
    let srv = start(config(), app()).await;
    let two = b"GET /sleep/50 HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let reply = raw(srv.addr, two, Duration::from_secs(5)).await;
    let first = reply.find("slept").expect("first response");
    let second = reply.find("HTTP/1.1").expect("second response");
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 2, "{reply}");
    assert!(
        second < first && first < reply.rfind("HTTP/1.1 200").unwrap(),
        "{reply}"
    );
}

#[tokio::test]
async fn h2c_prior_knowledge_on_the_same_port() {
    let srv = start(config(), app()).await;
    let mut c = h2_client(srv.addr).await;
    let (status, _, body) = send(&mut c, req("/version")).await;
    assert_eq!(status, 200);
    assert_eq!(body, "HTTP/2.0");
    // and HTTP/1.1 still works on the same port
    let (status, _, body) = get(srv.addr, "/version").await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"HTTP/1.1"[..]));
}

#[tokio::test]
async fn h2c_many_concurrent_streams_on_one_connection() {
    let srv = start(config(), app()).await;
    let c = h2_client(srv.addr).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            send(&mut c, req("/sleep/20")).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(srv.handle.connections(), 1);
}

#[tokio::test]
async fn http2_disabled_serves_http1_only() {
    let srv = start(config().http2(false), app()).await;
    let stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let res = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await;
    if let Ok((mut tx, conn)) = res {
        tokio::spawn(conn);
        assert!(
            tx.send_request(req("/")).await.is_err(),
            "h2 must be refused when disabled"
        );
    }
    assert_eq!(get(srv.addr, "/").await.0, 200);
}

#[tokio::test]
async fn a_panicking_handler_takes_down_only_its_own_request() {
    init_tracing();
    let srv = start(config(), app()).await;
    let mut c = h1_client(srv.addr).await;
    let (status, _, _) = send(&mut c, req("/panic")).await;
    assert_eq!(status, 500);
    // the same keep-alive connection still serves
    let (status, _, body) = send(&mut c, req("/")).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"Hello, World!"[..]));
    // HTTP/2: the other streams on the connection are unaffected
    let mut h2 = h2_client(srv.addr).await;
    let mut h2b = h2.clone();
    let slow = tokio::spawn(async move { send(&mut h2b, req("/sleep/100")).await.0 });
    assert_eq!(send(&mut h2, req("/panic")).await.0, 500);
    assert_eq!(slow.await.unwrap(), 200);
}

#[tokio::test]
async fn curl_agrees_on_http1_and_h2c() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl is required (scripts/test.sh installs it)");
    }
    let srv = start(config(), app()).await;
    let url = format!("http://{}/version", srv.addr);
    let out = tokio::task::spawn_blocking(move || {
        let h1 = std::process::Command::new("curl")
            .args(["-sS", "--http1.1", &url])
            .output()
            .unwrap();
        let h2 = std::process::Command::new("curl")
            .args(["-sS", "--http2-prior-knowledge", &url])
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&h1.stdout).into_owned(),
            String::from_utf8_lossy(&h2.stdout).into_owned(),
        )
    })
    .await
    .unwrap();
    assert_eq!(out.0, "HTTP/1.1");
    assert_eq!(out.1, "HTTP/2.0");
}

#[tokio::test]
async fn reuse_port_lets_two_servers_share_a_port() {
    let a = start(config().reuse_port(true), app()).await;
    let b = conduit_server::Server::bind(
        conduit_server::Config::new(a.addr.to_string())
            .handle_signals(false)
            .reuse_port(true),
    )
    .await
    .expect("second bind with SO_REUSEPORT");
    assert_eq!(b.local_addr(), a.addr);
    // without SO_REUSEPORT the same bind is refused
    let err = conduit_server::Server::bind(conduit_server::Config::new(a.addr.to_string()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, conduit_server::ServerError::Bind { .. }),
        "{err}"
    );
    let b = start_server(b, app());
    for _ in 0..4 {
        assert_eq!(get(a.addr, "/").await.0, 200);
    }
    b.handle.shutdown();
    b.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn head_responses_carry_no_body_on_http1_and_http2() {
    // a handler that ignores the method and always sends a body
    let srv = start(config(), app()).await;
    let head = || {
        http::Request::head("/")
            .header("host", "test")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let mut h2 = h2_client(srv.addr).await;
    let (status, headers, body) = send(&mut h2, head()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "13");
    assert!(body.is_empty(), "HTTP/2 HEAD sent a body: {body:?}");
    // the connection is still healthy afterwards
    assert_eq!(send(&mut h2, req("/")).await.2, "Hello, World!");

    let reply = raw(
        srv.addr,
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("content-length: 13\r\n"), "{reply}");
    assert!(
        reply.ends_with("\r\n\r\n"),
        "HTTP/1.1 HEAD sent a body: {reply:?}"
    );
}
