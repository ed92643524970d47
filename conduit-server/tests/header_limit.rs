//! `max_header_bytes` is exact over HTTP/1.1: a request head (request line, header lines and the
//! blank line) of exactly the limit is served, one byte more is answered 431, however the head
//! arrives: in one write, in 4 KiB pieces, or in pieces with pauses between them. Checked at a
//! small configured limit and at the 1 MiB default.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `GET /` head of exactly `len` bytes (padding in one header value).
fn head_of(len: usize) -> Vec<u8> {
    let start = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ";
    let end = "\r\n\r\n";
    let pad = len - start.len() - end.len();
    let mut head = Vec::with_capacity(len);
    head.extend_from_slice(start.as_bytes());
    head.resize(start.len() + pad, b'a');
    head.extend_from_slice(end.as_bytes());
    assert_eq!(head.len(), len);
    head
}

#[derive(Clone, Copy, Debug)]
enum Arrival {
    /// The whole head in one write.
    OneWrite,
    /// 4 KiB writes back to back.
    Pieces,
    /// `n` writes with a pause after each.
    Slow(usize),
}

/// Send `head` as `arrival` says; the status of the reply (0 if none came).
async fn send(addr: SocketAddr, head: &[u8], arrival: Arrival) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let sent = match arrival {
        Arrival::OneWrite => s.write_all(head).await,
        Arrival::Pieces => write_in(&mut s, head, 4096, Duration::ZERO).await,
        Arrival::Slow(n) => {
            write_in(
                &mut s,
                head,
                head.len().div_ceil(n),
                Duration::from_millis(20),
            )
            .await
        }
    };
    // A server that refused the head may close before the last piece is written; its answer
    // is in the receive buffer all the same.
    let _ = sent;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    status_of(&String::from_utf8_lossy(&out))
}

async fn write_in(
    s: &mut TcpStream,
    head: &[u8],
    piece: usize,
    pause: Duration,
) -> std::io::Result<()> {
    for chunk in head.chunks(piece) {
        s.write_all(chunk).await?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(())
}

async fn check_exact(limit: usize, srv_addr: SocketAddr, arrivals: &[Arrival]) {
    for &arrival in arrivals {
        assert_eq!(
            send(srv_addr, &head_of(limit), arrival).await,
            200,
            "a head of exactly {limit} bytes, {arrival:?}"
        );
        assert_eq!(
            send(srv_addr, &head_of(limit + 1), arrival).await,
            431,
            "a head of {} bytes, {arrival:?}",
            limit + 1
        );
    }
}

#[tokio::test]
async fn a_small_limit_is_exact_however_the_head_arrives() {
    for limit in [8192, 20_000] {
        let srv = start(config().max_header_bytes(limit), app()).await;
        check_exact(
            limit,
            srv.addr,
            &[Arrival::OneWrite, Arrival::Pieces, Arrival::Slow(5)],
        )
        .await;
        // A head far over the limit is refused without reading it all.
        assert_eq!(
            send(srv.addr, &head_of(limit * 8), Arrival::Pieces).await,
            431
        );
    }
}

#[tokio::test]
async fn the_default_limit_is_exact_however_the_head_arrives() {
    let limit = 1 << 20;
    let srv = start(config(), app()).await;
    check_exact(
        limit,
        srv.addr,
        &[Arrival::OneWrite, Arrival::Pieces, Arrival::Slow(8)],
    )
    .await;
    assert_eq!(
        send(srv.addr, &head_of(2 * limit), Arrival::Pieces).await,
        431
    );
}
