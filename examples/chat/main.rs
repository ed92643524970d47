//! A chat page over a WebSocket: the page is served by conduit-static, the room is a
//! conduit-ws socket per participant, and the page shows whether permessage-deflate was
//! negotiated (`WebSocket.extensions`) and, from the server's welcome, whether the socket runs
//! over HTTP/1.1 or HTTP/2 (RFC 8441). An app uses `conduit::ws` (the facade's `ws` feature);
//! the examples use the `conduit-ws` crate, a dev-dependency, so they build without it.
//!
//! ```sh
//! cargo run --example chat        # then open http://127.0.0.1:8080/
//! # over TLS, where a browser speaks HTTP/2 and opens the socket with extended CONNECT:
//! TLS_CERT=cert.pem TLS_KEY=key.pem cargo run --example chat
//! ```
mod app;

use conduit::{Config, Server, TlsConfig};

#[tokio::main]
async fn main() -> Result<(), conduit::ServerError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut config = Config::from_env_addr("127.0.0.1:8080");
    let tls = std::env::var("TLS_CERT")
        .ok()
        .zip(std::env::var("TLS_KEY").ok());
    let scheme = if let Some((cert, key)) = tls {
        config = config.tls(TlsConfig::from_pem_files(cert, key));
        "https"
    } else {
        "http"
    };
    let room = app::Room::default();
    // The room's lines go to the log; lines typed on stdin are announced to the room.
    let mut lines = room.listen();
    tokio::spawn(async move {
        while let Ok(line) = lines.recv().await {
            tracing::info!("{line}");
        }
    });
    let announcer = room.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            announcer.say(format!("server: {line}"));
        }
    });
    let server = Server::bind(config).await?;
    println!(
        "open {scheme}://{}/ (type a line here to announce it)",
        server.local_addr()
    );
    server.serve(app::app(room)).await
}
