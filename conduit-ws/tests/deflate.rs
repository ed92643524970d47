//! permessage-deflate (RFC 7692) on the wire: a raw Rust client that compresses with flate2
//! (raw deflate, the tail stripped) and reads the server's frames bit by bit, so it can check
//! RSV1, context takeover, bombs and the frames a client library would never send.

mod support;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use support::*;

const TAIL: [u8; 4] = [0, 0, 0xFF, 0xFF];

fn compress(payload: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    c.compress_vec(payload, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.len() < out.capacity(), "one call compresses it all");
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

/// The client's inflater: with context takeover it must be kept between messages.
struct Inflater(Decompress);

impl Inflater {
    fn new() -> Self {
        Inflater(Decompress::new(false))
    }

    fn inflate(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut input = payload.to_vec();
        input.extend_from_slice(&TAIL);
        let mut out = Vec::with_capacity(1 << 20);
        self.0
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }
}

async fn connect_deflate(
    addr: std::net::SocketAddr,
    path: &str,
    offer: &str,
) -> (RawClient, Option<String>) {
    let extra = format!("Sec-WebSocket-Extensions: {offer}\r\n");
    let (tcp, head) = raw_request(addr, &handshake(path, &extra)).await;
    assert_eq!(head.status, 101);
    let ext = head.get("sec-websocket-extensions").map(str::to_owned);
    (RawClient { tcp }, ext)
}

#[tokio::test]
async fn without_context_takeover_each_message_stands_alone() {
    let srv = start().await;
    let (mut ws, ext) = connect_deflate(srv.addr, "/echo", "permessage-deflate").await;
    assert_eq!(
        ext.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    let text = "conduit compresses this sentence. ".repeat(60);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        ws.send_frame(0xC1, &compress(text.as_bytes()), true).await;
        let (b0, payload) = ws.read_frame().await;
        assert_eq!(b0, 0xC1, "FIN + RSV1 + text");
        // A fresh inflater each time: the server kept no context.
        assert_eq!(Inflater::new().inflate(&payload), text.as_bytes());
        sizes.push(payload.len());
    }
    assert!(sizes.iter().all(|s| *s == sizes[0]), "{sizes:?}");
    assert!(sizes[0] < text.len() / 5);
    // Binary, and an uncompressed message on the same socket.
    let bin: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
    ws.send_frame(0xC2, &compress(&bin), true).await;
    let (b0, payload) = ws.read_frame().await;
    assert_eq!(b0, 0xC2);
    assert_eq!(Inflater::new().inflate(&payload), bin);
    ws.send_frame(0x81, b"short", true).await;
    assert_eq!(
        ws.read_frame().await,
        (0x81, b"short".to_vec()),
        "short: sent as is"
    );
    // A compressed message in two fragments: RSV1 on the first only.
    let whole = compress(text.as_bytes());
    let (a, b) = whole.split_at(whole.len() / 2);
    ws.send_frame(0x41, a, true).await;
    ws.send_frame(0x80, b, true).await;
    let (_, payload) = ws.read_frame().await;
    assert_eq!(Inflater::new().inflate(&payload), text.as_bytes());
}

#[tokio::test]
async fn with_context_takeover_repeats_compress_against_the_window() {
    let srv = start().await;
    let (mut ws, ext) = connect_deflate(srv.addr, "/echo-takeover", "permessage-deflate").await;
    assert_eq!(ext.as_deref(), Some("permessage-deflate"));
    let text = "a message the window remembers: 0123456789 abcdefghij ".repeat(20);
    let mut inflater = Inflater::new();
    let mut sizes = Vec::new();
    for _ in 0..3 {
        ws.send_frame(0xC1, &compress(text.as_bytes()), true).await;
        let (b0, payload) = ws.read_frame().await;
        assert_eq!(b0, 0xC1);
        // One inflater for the whole socket: the server kept its context.
        assert_eq!(inflater.inflate(&payload), text.as_bytes());
        sizes.push(payload.len());
    }
    assert!(
        sizes[1] < sizes[0] / 2 && sizes[2] < sizes[0] / 2,
        "repeats are back-references to the window: {sizes:?}"
    );
}

#[tokio::test]
async fn a_compression_bomb_is_refused_with_1009() {
    let srv = start().await;
    let (mut ws, _) = connect_deflate(srv.addr, "/echo", "permessage-deflate").await;
    let bomb = compress(&vec![0u8; MAX_MESSAGE * 8]);
    assert!(
        bomb.len() < MAX_FRAME,
        "the bomb fits in a frame: {}",
        bomb.len()
    );
    ws.send_frame(0xC2, &bomb, true).await;
    assert_eq!(ws.expect_close().await, 1009);
}

#[tokio::test]
async fn invalid_compressed_data_is_refused_with_1002() {
    let srv = start().await;
    let (mut ws, _) = connect_deflate(srv.addr, "/echo", "permessage-deflate").await;
    ws.send_frame(0xC2, &[0xFF; 32], true).await;
    assert_eq!(ws.expect_close().await, 1002);
}

#[tokio::test]
async fn rsv1_on_control_and_continuation_frames_is_refused_with_1002() {
    let srv = start().await;
    let (mut ws, _) = connect_deflate(srv.addr, "/echo", "permessage-deflate").await;
    ws.send_frame(0xC9, b"", true).await; // compressed Ping
    assert_eq!(ws.expect_close().await, 1002);
    let (mut ws, _) = connect_deflate(srv.addr, "/echo", "permessage-deflate").await;
    ws.send_frame(0x01, b"abc", true).await;
    ws.send_frame(0xC0, b"def", true).await; // RSV1 on a continuation
    assert_eq!(ws.expect_close().await, 1002);
}

#[tokio::test]
async fn rsv1_without_negotiation_is_refused_with_1002() {
    let srv = start().await;
    let mut ws = RawClient::connect(srv.addr, "/echo").await;
    ws.send_frame(0xC1, &compress(b"hello"), true).await;
    assert_eq!(ws.expect_close().await, 1002);
}

#[tokio::test]
async fn invalid_offers_are_declined_and_the_socket_runs_uncompressed() {
    let srv = start().await;
    let (mut ws, ext) = connect_deflate(
        srv.addr,
        "/echo",
        "permessage-deflate; server_max_window_bits=99",
    )
    .await;
    assert_eq!(ext, None);
    let text = "x".repeat(500);
    ws.send_frame(0x81, text.as_bytes(), true).await;
    assert_eq!(ws.read_frame().await, (0x81, text.into_bytes()));
}
