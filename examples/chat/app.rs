//! The chat room: the page (conduit-static's `ServeFile`) and the WebSocket every participant
//! joins. Shared by `main.rs` and the browser test (`tests/chat_browser.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use conduit::http::Version;
use conduit::{Request, Router, ServeFile, any, get};
use conduit_ws::{Message, WebSocket, WebSocketUpgrade, WsRejection};
use tokio::sync::broadcast;

/// The page, next to this file.
pub const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/chat/index.html");

/// The room: every line said is sent to every participant.
#[derive(Clone)]
pub struct Room {
    said: broadcast::Sender<String>,
    joined: Arc<AtomicU64>,
}

impl Default for Room {
    fn default() -> Self {
        Room {
            said: broadcast::channel(256).0,
            joined: Arc::default(),
        }
    }
}

impl Room {
    /// Every line said in the room from now on (a log, a moderator, the browser test).
    pub fn listen(&self) -> broadcast::Receiver<String> {
        self.said.subscribe()
    }

    /// Say a line to everyone in the room (an announcement from the server).
    pub fn say(&self, line: impl Into<String>) {
        let _ = self.said.send(line.into());
    }
}

/// `HTTP/1.1` or `HTTP/2`: what the socket runs over (RFC 8441 when it is HTTP/2).
fn over(version: Version) -> &'static str {
    if version == Version::HTTP_2 {
        "HTTP/2"
    } else {
        "HTTP/1.1"
    }
}

/// One participant: a welcome saying how the socket runs, then every line it says goes to the
/// room, stamped with its name and HTTP version, and every line of the room comes back to it.
async fn participant(mut socket: WebSocket, room: Room) {
    let name = format!("guest-{}", room.joined.fetch_add(1, Ordering::Relaxed) + 1);
    let http = over(socket.http_version());
    let compression = socket.extensions().unwrap_or("off").to_owned();
    tracing::info!(%name, http, %compression, "joined the chat");
    let mut heard = room.said.subscribe();
    let welcome = format!("welcome {name}: connected over {http}, compression: {compression}");
    if socket.send(Message::text(welcome)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let _ = room.said.send(format!("[{http}] {name}: {text}"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            line = heard.recv() => match line {
                Ok(line) => {
                    if socket.send(Message::text(line)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let note = format!("({n} lines missed: too slow)");
                    if socket.send(Message::text(note)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    tracing::info!(%name, "left the chat");
}

/// `/` the page, `/ws` the room (`any`: over HTTP/2 a WebSocket is a CONNECT, RFC 8441).
pub fn app(room: Room) -> Router {
    Router::new().route("/", get(ServeFile::new(PAGE))).route(
        "/ws",
        any(move |mut req: Request| {
            let room = room.clone();
            async move {
                let ws = WebSocketUpgrade::from_request(&mut req)?;
                Ok::<_, WsRejection>(ws.on_upgrade(move |socket| participant(socket, room)))
            }
        }),
    )
}
