//! WebSockets through conduit-server over real sockets: tokio-tungstenite as the client for
//! echo, ping, subprotocols and shutdown; a raw TCP client for handshakes and broken frames.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as TCode;
use tokio_tungstenite::tungstenite::{Bytes, Message as TMessage};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr, path: &str) -> Client {
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
    let (c, res) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{addr}{path}"),
        Some(config),
        false,
    )
    .await
    .expect("handshake");
    assert_eq!(res.status(), 101);
    c
}

/// The next data or close message (pongs and pings skipped).
async fn next_msg(c: &mut Client) -> TMessage {
    loop {
        let m = timeout(GUARD, c.next())
            .await
            .expect("a message in time")
            .expect("a message")
            .expect("no error");
        if !matches!(m, TMessage::Ping(_) | TMessage::Pong(_)) {
            return m;
        }
    }
}

fn sizes() -> Vec<usize> {
    vec![0, 1, 125, 126, 127, 65535, 65536, 100_000, MAX_FRAME]
}

#[tokio::test]
async fn echoes_text_and_binary_from_0_bytes_to_the_frame_limit() {
    for path in ["/echo", "/split-echo"] {
        let srv = start().await;
        let mut c = connect(srv.addr, path).await;
        for len in sizes() {
            let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            c.send(TMessage::text(text.clone())).await.unwrap();
            match next_msg(&mut c).await {
                TMessage::Text(t) => assert_eq!(t.as_str(), text, "{path} text {len}"),
                other => panic!("{path} text {len}: {other:?}"),
            }
            let bin: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            c.send(TMessage::binary(bin.clone())).await.unwrap();
            match next_msg(&mut c).await {
                TMessage::Binary(b) => assert_eq!(&b[..], &bin[..], "{path} binary {len}"),
                other => panic!("{path} binary {len}: {other:?}"),
            }
        }
        // Multi-byte UTF-8 survives whole.
        c.send(TMessage::text("héllo wörld ✓ 🦀")).await.unwrap();
        assert_eq!(next_msg(&mut c).await, TMessage::text("héllo wörld ✓ 🦀"));
        c.close(None).await.unwrap();
        // The closing handshake completes: the client sees the echo of its Close, then the end.
        loop {
            match timeout(GUARD, c.next()).await.expect("closed in time") {
                Some(Ok(TMessage::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("{path}: {e}"),
            }
        }
        timeout(GUARD, async {
            while srv.open.load(Ordering::SeqCst) != 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the handler's stream ends after the close");
        srv.handle.shutdown();
        srv.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn many_messages_in_a_row_and_interleaved_sockets() {
    let srv = start().await;
    let mut a = connect(srv.addr, "/echo").await;
    let mut b = connect(srv.addr, "/echo").await;
    for i in 0..200 {
        a.feed(TMessage::text(format!("a{i}"))).await.unwrap();
        b.feed(TMessage::text(format!("b{i}"))).await.unwrap();
    }
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    for i in 0..200 {
        assert_eq!(next_msg(&mut a).await, TMessage::text(format!("a{i}")));
        assert_eq!(next_msg(&mut b).await, TMessage::text(format!("b{i}")));
    }
}

#[tokio::test]
async fn pings_are_answered_with_the_same_payload() {
    let srv = start().await;
    let mut c = connect(srv.addr, "/echo").await;
    c.send(TMessage::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    let m = timeout(GUARD, c.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m, TMessage::Pong(Bytes::from_static(b"are you there")));
    // An unsolicited pong is fine and needs no answer; the socket goes on.
    c.send(TMessage::Pong(Bytes::from_static(b"x")))
        .await
        .unwrap();
    c.send(TMessage::text("still here")).await.unwrap();
    assert_eq!(next_msg(&mut c).await, TMessage::text("still here"));
}

#[tokio::test]
async fn subprotocol_is_chosen_in_the_servers_order() {
    let srv = start().await;
    let mut req = format!("ws://{}/echo", srv.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "other, chat, chat.v2".parse().unwrap(),
    );
    let (_c, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v2");

    let (_tcp, head) = raw_request(
        srv.addr,
        &handshake("/echo", "Sec-WebSocket-Protocol: nope\r\n"),
    )
    .await;
    assert_eq!(head.status, 101);
    assert_eq!(head.get("sec-websocket-protocol"), None);
}

#[tokio::test]
async fn handshakes_that_are_not_websocket_upgrades_are_refused() {
    let srv = start().await;
    let plain = "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (_t, head) = raw_request(srv.addr, plain).await;
    assert_eq!(head.status, 426);
    assert_eq!(head.get("sec-websocket-version"), Some("13"));
    assert_eq!(head.get("upgrade"), Some("websocket"));

    let version_8 = "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let (_t, head) = raw_request(srv.addr, version_8).await;
    assert_eq!(head.status, 426);
    assert_eq!(head.get("sec-websocket-version"), Some("13"));

    let malformed = [
        // a key that decodes to 5 bytes
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: aGVsbG8=\r\n\r\n",
        // a key that is not base64
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n\r\n",
        // no key
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        // no Connection: upgrade
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        // no version
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ];
    for req in malformed {
        let (_t, head) = raw_request(srv.addr, req).await;
        assert_eq!(head.status, 400, "{req}");
    }

    // Token lists and case are accepted.
    let mixed = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let (_t, head) = raw_request(srv.addr, mixed).await;
    assert_eq!(head.status, 101);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403() {
    let srv = start().await;
    let (_t, head) = raw_request(
        srv.addr,
        &handshake("/origin", "Origin: https://evil.example\r\n"),
    )
    .await;
    assert_eq!(head.status, 403);
    for ok in [
        "Origin: https://app.example\r\n",
        "Origin: HTTP://LOCALHOST:3000\r\n",
        "",
    ] {
        let (_t, head) = raw_request(srv.addr, &handshake("/origin", ok)).await;
        assert_eq!(head.status, 101, "{ok:?}");
    }
}

#[tokio::test]
async fn fragmented_messages_are_assembled_with_control_frames_between() {
    let srv = start().await;
    let mut c = RawClient::connect(srv.addr, "/echo").await;
    c.send_frame(0x01, b"hel", true).await; // text, not final
    c.send_frame(0x89, b"p", true).await; // ping between fragments
    c.send_frame(0x00, b"lo ", true).await; // continuation
    c.send_frame(0x80, "wörld".as_bytes(), true).await; // final continuation
    assert_eq!(c.read_frame().await, (0x8A, b"p".to_vec()));
    assert_eq!(
        c.read_frame().await,
        (0x81, "hello wörld".as_bytes().to_vec())
    );
    // A binary message in many small pieces, up to the message limit exactly.
    let piece = vec![0xA5u8; MAX_MESSAGE / 4];
    c.send_frame(0x02, &piece, true).await;
    c.send_frame(0x00, &piece, true).await;
    c.send_frame(0x00, &piece, true).await;
    c.send_frame(0x80, &piece, true).await;
    let (b0, payload) = c.read_frame().await;
    assert_eq!(b0, 0x82);
    assert_eq!(payload.len(), MAX_MESSAGE);
    assert!(payload.iter().all(|b| *b == 0xA5));
    // The closing handshake: our Close is echoed, then the server closes the connection.
    c.send_frame(0x88, &[0x03, 0xE8], true).await;
    assert_eq!(c.expect_close().await, 1000);
}

/// A raw frame: first byte (FIN, RSV, opcode), payload, masked.
type RawFrame<'a> = (u8, &'a [u8], bool);

/// Send `frames` on a fresh socket and return the code of the server's Close.
async fn close_code_for(frames: &[RawFrame<'_>]) -> u16 {
    let srv = start().await;
    let mut c = RawClient::connect(srv.addr, "/echo").await;
    for (b0, payload, masked) in frames {
        c.send_frame(*b0, payload, *masked).await;
    }
    timeout(GUARD, c.expect_close())
        .await
        .expect("a Close in time")
}

#[tokio::test]
async fn protocol_errors_close_with_1002() {
    let long = [0u8; 126];
    let cases: &[(&str, &[RawFrame<'_>])] = &[
        ("unmasked client frame", &[(0x81, b"hi", false)]),
        (
            "reserved bit 1 without an extension",
            &[(0xC1, b"hi", true)],
        ),
        ("reserved bit 3", &[(0x91, b"hi", true)]),
        ("unknown data opcode", &[(0x83, b"", true)]),
        ("unknown control opcode", &[(0x8B, b"", true)]),
        ("fragmented ping", &[(0x09, b"p", true)]),
        ("ping over 125 bytes", &[(0x89, &long, true)]),
        ("continuation without a start", &[(0x80, b"x", true)]),
        (
            "new message inside a fragmented one",
            &[(0x01, b"a", true), (0x81, b"b", true)],
        ),
        ("close with a 1-byte payload", &[(0x88, &[3], true)]),
        ("close with code 1005", &[(0x88, &[0x03, 0xED], true)]),
    ];
    for (name, frames) in cases {
        assert_eq!(close_code_for(frames).await, 1002, "{name}");
    }
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let cases: &[(&str, &[RawFrame<'_>])] = &[
        ("text frame", &[(0x81, &[0x68, 0xFF, 0x69], true)]),
        (
            "fragmented text",
            &[(0x01, &[0xE2, 0x82], true), (0x80, &[0x28], true)],
        ),
        ("close reason", &[(0x88, &[0x03, 0xE8, 0xC3, 0x28], true)]),
    ];
    for (name, frames) in cases {
        assert_eq!(close_code_for(frames).await, 1007, "{name}");
    }
    // A character split across fragments is fine.
    let srv = start().await;
    let mut c = RawClient::connect(srv.addr, "/echo").await;
    c.send_frame(0x01, &[0xE2, 0x82], true).await;
    c.send_frame(0x80, &[0xAC], true).await;
    assert_eq!(c.read_frame().await, (0x81, "€".as_bytes().to_vec()));
}

#[tokio::test]
async fn frames_and_messages_over_the_limits_close_with_1009_before_their_payload() {
    // Only the header of a frame over the frame limit: refused without waiting for the payload.
    let srv = start().await;
    let mut c = RawClient::connect(srv.addr, "/echo").await;
    c.send_header(0x82, MAX_FRAME as u64 + 1).await;
    assert_eq!(timeout(GUARD, c.expect_close()).await.unwrap(), 1009);

    // Continuation frames each under the frame limit, together over the message limit: the
    // header of the fragment that crosses it is refused.
    let mut c = RawClient::connect(srv.addr, "/echo").await;
    let piece = vec![1u8; MAX_FRAME];
    c.send_frame(0x02, &piece, true).await;
    c.send_frame(0x00, &piece, true).await;
    c.send_header(0x80, 1).await;
    assert_eq!(timeout(GUARD, c.expect_close()).await.unwrap(), 1009);

    // A 64-bit length far beyond any limit.
    let mut c = RawClient::connect(srv.addr, "/echo").await;
    c.send_header(0x82, 1 << 40).await;
    assert_eq!(timeout(GUARD, c.expect_close()).await.unwrap(), 1009);

    // tokio-tungstenite sees the same: its message over the limit gets 1009.
    let mut t = connect(srv.addr, "/echo").await;
    let _ = t.send(TMessage::binary(vec![0u8; MAX_FRAME + 1])).await;
    match next_msg(&mut t).await {
        TMessage::Close(Some(f)) => assert_eq!(f.code, TCode::Size),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_idle_socket_is_pinged_then_closed_with_1001() {
    let srv = start().await;
    let mut c = RawClient::connect(srv.addr, "/idle").await;
    let started = tokio::time::Instant::now();
    // A keep-alive ping after the 200 ms ping interval...
    let (b0, payload) = timeout(GUARD, c.read_frame()).await.unwrap();
    assert_eq!((b0, payload.len()), (0x89, 0));
    assert!(started.elapsed() >= Duration::from_millis(150));
    // ...unanswered, so Close 1001 after the 600 ms idle timeout.
    assert_eq!(timeout(GUARD, c.expect_close()).await.unwrap(), 1001);
    assert!(started.elapsed() >= Duration::from_millis(550));

    // A client that answers the pings (tokio-tungstenite does, while it reads) stays open.
    let mut t = connect(srv.addr, "/idle").await;
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        loop {
            match tokio::time::timeout_at(deadline, t.next()).await {
                Err(_) => return (pings, t),
                Ok(Some(Ok(TMessage::Ping(_)))) => pings += 1,
                Ok(other) => panic!("the answering client was closed: {other:?}"),
            }
        }
    });
    let (pings, mut t) = reader.await.unwrap();
    assert!(pings >= 3, "{pings} keep-alive pings in 1.5 s");
    t.send(TMessage::text("alive")).await.unwrap();
    assert_eq!(next_msg(&mut t).await, TMessage::text("alive"));
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_the_writer_back() {
    let srv = start().await;
    let c = RawClient::connect(srv.addr, "/flood").await;
    // The handler sends 1 KiB messages as fast as it can; nobody reads. The kernel's socket
    // buffers fill, then the 16 KiB send queue, then `send().await` waits.
    let mut last = 0;
    let stalled = timeout(GUARD, async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = srv.flooded.load(Ordering::SeqCst);
            if now == last && now > 0 {
                return now;
            }
            last = now;
        }
    })
    .await
    .expect("the writer stalls");
    // The queue held at most its 16 KiB bound plus the one message that crossed it.
    let most = srv.flood_buffered.load(Ordering::SeqCst);
    assert!(most > 8 << 10, "the queue filled ({most} bytes)");
    assert!(most <= (16 << 10) + 1024 + 4, "{most} bytes queued");
    // Reading lets it go on.
    let mut c = c;
    for _ in 0..stalled + 100 {
        let (b0, payload) = timeout(GUARD, c.read_frame()).await.unwrap();
        assert_eq!((b0, payload.len()), (0x82, 1024));
    }
    assert!(srv.flooded.load(Ordering::SeqCst) > stalled);
}

#[tokio::test]
async fn graceful_shutdown_closes_every_socket_with_1001() {
    let srv = start_with(
        conduit_server::Config::new("127.0.0.1:0")
            .handle_signals(false)
            .shutdown_timeout(Duration::from_secs(60)),
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(connect(srv.addr, "/echo").await);
    }
    let mut raw = RawClient::connect(srv.addr, "/split-echo").await;
    // This one never answers the server's Close: its 300 ms close timeout ends it.
    let mut silent = RawClient::connect(srv.addr, "/idle").await;
    timeout(GUARD, async {
        while srv.open.load(Ordering::SeqCst) != 22 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    srv.handle.shutdown();
    for c in &mut clients {
        match next_msg(c).await {
            TMessage::Close(Some(f)) => assert_eq!(f.code, TCode::Away),
            other => panic!("{other:?}"),
        }
        // Polling on sends tungstenite's Close reply, so the socket need not wait out its
        // close timeout.
        assert!(timeout(GUARD, c.next()).await.unwrap().is_none());
    }
    // The raw client answers the Close; the server then closes the connection.
    let (b0, payload) = timeout(GUARD, raw.read_frame()).await.unwrap();
    assert_eq!(b0, 0x88);
    assert_eq!(&payload[..2], &1001u16.to_be_bytes());
    raw.send_frame(0x88, &payload[..2], true).await;
    assert!(
        timeout(GUARD, raw.try_read_frame())
            .await
            .unwrap()
            .is_none()
    );
    let asked = tokio::time::Instant::now();
    assert_eq!(timeout(GUARD, silent.expect_close()).await.unwrap(), 1001);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "an unanswered Close is given up after the close timeout"
    );
    timeout(Duration::from_secs(10), srv.task)
        .await
        .expect("the server exits well within its deadline")
        .unwrap()
        .unwrap();
    // The drain waits for upgraded connections too: when the server is done, so is every socket.
    assert_eq!(
        srv.open.load(Ordering::SeqCst),
        0,
        "a socket outlived the drain"
    );
}

/// An upgraded connection keeps its place in `max_connections` until the socket closes: the
/// limit counts WebSockets, not only HTTP connections.
#[tokio::test]
async fn an_open_socket_counts_against_max_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = start_with(
        conduit_server::Config::new("127.0.0.1:0")
            .handle_signals(false)
            .max_connections(1),
    )
    .await;
    let mut ws = connect(srv.addr, "/echo").await;
    ws.send(TMessage::text("hi")).await.unwrap();
    assert_eq!(next_msg(&mut ws).await, TMessage::text("hi"));
    // A second connection waits: the socket holds the only place.
    let mut other = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    other
        .write_all(b"GET /nowhere HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    assert!(
        timeout(Duration::from_millis(700), other.read_exact(&mut buf))
            .await
            .is_err(),
        "served while the WebSocket held the only connection"
    );
    // Once the socket closes, the waiting connection is served.
    ws.close(None).await.unwrap();
    while timeout(GUARD, ws.next()).await.unwrap().is_some() {}
    timeout(GUARD, other.read_exact(&mut buf))
        .await
        .expect("served once the socket closed")
        .unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    srv.handle.shutdown();
}

#[tokio::test]
async fn refused_handshakes_go_through_the_error_renderer_with_their_headers() {
    use tokio::io::AsyncReadExt;
    let config = conduit_server::Config::new("127.0.0.1:0")
        .handle_signals(false)
        .errors(conduit_core::ErrorRenderer::problem_json());
    let srv = start_with(config).await;
    let plain = "GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (mut tcp, head) = raw_request(srv.addr, plain).await;
    assert_eq!(head.status, 426);
    assert_eq!(head.get("sec-websocket-version"), Some("13"));
    assert_eq!(head.get("upgrade"), Some("websocket"));
    assert_eq!(head.get("content-type"), Some("application/problem+json"));
    let mut body = String::new();
    timeout(GUARD, tcp.read_to_string(&mut body))
        .await
        .expect("body in time")
        .unwrap();
    assert!(body.starts_with(r#"{"type":"about:blank","title":"Upgrade Required","status":426,"detail":"not a WebSocket upgrade"#), "{body}");
}
