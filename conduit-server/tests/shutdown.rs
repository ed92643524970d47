//! Graceful shutdown over real sockets: in-flight requests finish, new connections are
//! refused, hooks run once in order, the deadline force-closes, readiness turns 503.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use conduit_server::Server;
use http_body_util::Full;

fn req(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn in_flight_requests_finish_new_connections_are_refused_hooks_run_once() {
    init_tracing();
    let server = Server::bind(config()).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    for name in ["first", "second"] {
        let order = order.clone();
        server.on_shutdown(name, move |left| async move {
            assert!(left > Duration::from_secs(1), "hook got {left:?}");
            order.lock().unwrap().push(name);
        });
    }
    let srv = start_server(server, app());

    // an HTTP/1 and an HTTP/2 request in flight, plus an idle keep-alive connection
    let mut h1 = h1_client(srv.addr).await;
    let h1_flight = tokio::spawn(async move { send(&mut h1, req("/sleep/600")).await });
    let mut h2 = h2_client(srv.addr).await;
    let h2_flight = tokio::spawn(async move { send(&mut h2, req("/sleep/600")).await });
    let mut idle = h1_client(srv.addr).await;
    assert_eq!(send(&mut idle, req("/")).await.0, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(srv.handle.connections(), 3);

    // shutdown triggered twice, from two tasks
    let (a, b) = (srv.handle.clone(), srv.handle.clone());
    let t0 = Instant::now();
    tokio::join!(
        tokio::spawn(async move { a.shutdown() }),
        tokio::spawn(async move { b.shutdown() })
    )
    .0
    .unwrap();
    assert!(srv.handle.is_draining());

    // the idle connection closes at once, new connections are refused
    assert!(
        eventually(Duration::from_millis(300), || srv.handle.connections() == 2).await,
        "idle connection not closed"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(srv.addr).await.is_err(),
        "new connection accepted while draining"
    );

    // in-flight requests complete; HTTP/1 is told to close
    let (status, headers, body) = h1_flight.await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"slept"[..]));
    assert_eq!(
        headers.get("connection").map(|v| v.to_str().unwrap()),
        Some("close")
    );
    let (status, _, body) = h2_flight.await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"slept"[..]));

    srv.task.await.unwrap().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        *order.lock().unwrap(),
        vec!["first", "second"],
        "hooks must run once, in order"
    );
}

#[tokio::test]
async fn the_deadline_force_closes_requests_that_never_end() {
    let server = Server::bind(config().shutdown_timeout(Duration::from_millis(400)))
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    server.on_shutdown("count", move |left| async move {
        // the drain used the whole deadline: the hook still gets its minimum time
        assert!(left >= Duration::from_millis(900), "hook got {left:?}");
        r.fetch_add(1, Ordering::SeqCst);
    });
    let srv = start_server(server, app());
    let mut c = h1_client(srv.addr).await;
    let stuck =
        tokio::spawn(async move { c.send_request(req("/forever")).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let t0 = Instant::now();
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "shutdown took {took:?}"
    );
    assert!(
        stuck.await.unwrap().is_err(),
        "the never-ending request must be cut off"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_or_panicking_hook_does_not_stop_the_others() {
    let server = Server::bind(config().shutdown_timeout(Duration::from_millis(200)))
        .await
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    server.on_shutdown("panics", |_| async { panic!("hook failure") });
    server.on_shutdown("too slow", |_| async {
        tokio::time::sleep(Duration::from_secs(60)).await
    });
    let r = ran.clone();
    server.on_shutdown("last", move |_| async move {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let srv = start_server(server, app());
    let t0 = Instant::now();
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "slow hook was not bounded: {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn readiness_turns_503_during_the_drain_delay() {
    let server = Server::bind(config().drain_delay(Duration::from_millis(500)))
        .await
        .unwrap();
    let ready = server.handle().readiness();
    let app = move |req: conduit_core::Request| {
        let ready = ready.clone();
        async move {
            if req.uri().path() == "/ready" {
                conduit_core::Handler::call(&ready, req).await
            } else {
                conduit_core::IntoResponse::into_response("ok")
            }
        }
    };
    let srv = start_server(server, app);
    assert_eq!(get(srv.addr, "/ready").await.0, 200);
    srv.handle.shutdown();
    // still accepting during the delay, but not ready
    let (status, _, body) = get(srv.addr, "/ready").await;
    assert_eq!((status.as_u16(), &body[..]), (503, &b"draining"[..]));
    assert_eq!(get(srv.addr, "/").await.0, 200);
    srv.task.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(srv.addr).await.is_err());
}
