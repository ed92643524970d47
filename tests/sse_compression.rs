//! SSE through the compression middleware, over a real socket: with `Accept-Encoding: gzip`
//! the stream is gzip-encoded and every event can be decoded as soon as it is published
//! (the middleware flushes the encoder per frame), not only when the stream ends.

use std::io::Write;
use std::time::Duration;

use conduit::middleware::Compression;
use conduit::{Config, Event, HandlerExt, Hub, IntoResponse, Request, Router, Server, get};
use flate2::write::GzDecoder;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

const GUARD: Duration = Duration::from_secs(20);

#[tokio::test]
async fn sse_events_arrive_one_by_one_through_gzip() {
    let hub = Hub::new();
    let events = hub.clone();
    let events = move |req: Request| {
        let sse = events.sse(&req);
        async move { sse.await.into_response() }
    };
    let app = Router::new().route("/events", get(events.with(Compression::new())));
    let server = Server::bind(Config::new("127.0.0.1:0").handle_signals(false))
        .await
        .unwrap();
    let addr = server.local_addr();
    let handle = server.handle();
    let task = tokio::spawn(server.serve(app));

    let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/events")
        .header("host", "x")
        .header("accept-encoding", "gzip")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = tokio::time::timeout(GUARD, tx.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let mut body = res.into_body();
    let mut decoded = GzDecoder::new(Vec::new());

    for i in 1..=3 {
        hub.publish(
            Event::default()
                .event("tick")
                .unwrap()
                .data(format!("n{i}")),
        )
        .await
        .unwrap();
        let want = format!("event: tick\ndata: n{i}\nid: {i}\n\n");
        // Read compressed frames until this event decodes: it must not wait for later ones.
        while !String::from_utf8_lossy(decoded.get_ref()).ends_with(&want) {
            let frame = tokio::time::timeout(GUARD, body.frame())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "event {i} not decodable yet; have {:?}",
                        String::from_utf8_lossy(decoded.get_ref())
                    )
                })
                .expect("stream open")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                decoded.write_all(&data).unwrap();
                decoded.flush().unwrap();
            }
        }
    }
    // Graceful shutdown ends the compressed stream too (with a valid gzip trailer).
    handle.shutdown();
    while let Some(frame) = tokio::time::timeout(GUARD, body.frame()).await.unwrap() {
        if let Ok(data) = frame.unwrap().into_data() {
            decoded.write_all(&data).unwrap();
        }
    }
    let all = decoded.finish().unwrap();
    assert!(
        String::from_utf8(all)
            .unwrap()
            .ends_with("data: n3\nid: 3\n\n")
    );
    tokio::time::timeout(GUARD, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
