//! The chat example in a real browser: headless Chromium opens the page (served by
//! conduit-static), its WebSocket joins the room, the page reports `WebSocket.extensions`
//! (permessage-deflate) in its first line and answers the server's lines. Over plain HTTP the
//! socket is an HTTP/1.1 upgrade; over TLS (a test certificate, `--ignore-certificate-errors`)
//! Chromium loads the page over HTTP/2 and opens the socket on that connection with RFC 8441,
//! which the server's own stamp on each line (`[HTTP/2]`) and its counts show.
//!
//! Needs `chromium` (Debian package `chromium`; `scripts/test.sh` installs it).

#[path = "../examples/chat/app.rs"]
#[allow(dead_code)]
mod app;

use std::time::Duration;

use conduit::{Config, Server, TlsConfig};
use conduit_test_support::{launch, make_cert};
use tokio::sync::broadcast;

const GUARD: Duration = Duration::from_secs(60);

/// The next line of the room that satisfies `f`.
async fn heard(
    lines: &mut broadcast::Receiver<String>,
    what: &str,
    f: impl Fn(&str) -> bool,
) -> String {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(GUARD, async {
        loop {
            let line = lines.recv().await.expect("the room is open");
            if f(&line) {
                return line;
            }
            seen.push(line);
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}; the room heard {seen:?}"))
}

/// Serve the chat on `config`, open the page in Chromium, and check the exchange over `http`.
async fn chat_in_chromium(config: Config, scheme: &str, http: &str, flags: &[&str]) {
    let room = app::Room::default();
    let mut lines = room.listen();
    let server = Server::bind(config.handle_signals(false))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    let task = tokio::spawn(server.serve(app::app(room.clone())));

    let _browser = launch(&format!("{scheme}://{addr}/?echo"), flags);
    let hello = heard(&mut lines, "the page's hello", |l| l.contains(": hello (")).await;
    let (stamp, _) = hello.split_once(' ').unwrap();
    assert_eq!(stamp, format!("[{http}]"), "{hello}");
    assert!(
        hello.contains("hello (compression: permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        "the page reads permessage-deflate from ws.extensions: {hello}"
    );
    // Messages both ways: a line from the server reaches the page, whose answer comes back.
    room.say("server: ping 1");
    heard(&mut lines, "the page's answer", |l| {
        l.starts_with(&format!("[{http}] guest-1: seen: server: ping 1"))
    })
    .await;
    room.say("server: ping 2 ✓");
    heard(&mut lines, "the page's second answer", |l| {
        l.ends_with("seen: server: ping 2 ✓")
    })
    .await;

    handle.shutdown();
    tokio::time::timeout(GUARD, task)
        .await
        .expect("shutdown closes the page's socket (1001) and does not hang")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_over_http1_negotiates_permessage_deflate() {
    chat_in_chromium(Config::new("127.0.0.1:0"), "http", "HTTP/1.1", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_over_tls_opens_its_socket_over_http2() {
    let before = conduit_ws::stats().opened_http2;
    let cert = make_cert("chat");
    let config = Config::new("127.0.0.1:0").tls(TlsConfig::from_pem_files(&cert.cert, &cert.key));
    chat_in_chromium(config, "https", "HTTP/2", &["--ignore-certificate-errors"]).await;
    assert!(
        conduit_ws::stats().opened_http2 > before,
        "the server counted an HTTP/2 socket"
    );
}
