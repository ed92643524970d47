// axum 0.8's WebSocket support (tokio-tungstenite underneath): the echo `scripts/ws_bench.sh`
// measures conduit's bench_server `/ws` against. Every text and binary message goes back as it
// came; default limits (axum's), no compression (tungstenite has none).
use axum::{
    extract::ws::{Message, WebSocket, WebSocketUpgrade},
    response::Response,
    routing::any,
    Router,
};

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err()
        {
            break;
        }
    }
}

// `any`: axum serves RFC 8441 (HTTP/2 CONNECT) WebSockets on the same route, as conduit does.
async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(echo)
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:18082".into());
    let app = Router::new().route("/ws", any(ws));
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
