// The idiomatic axum 0.8 broadcast: a `tokio::sync::broadcast` channel that one ticker task
// publishes `event: tick`, `id: N`, `data: {"seq":N}` into every 100 ms, and an SSE route that
// streams a receiver of it (`tokio-stream`'s `BroadcastStream`). `scripts/stream_bench.sh
// --peers` measures its fan-out with `sse_load` beside conduit's `/sse` hub.
use std::convert::Infallible;
use std::time::Duration;

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
    Router,
};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

async fn sse(
    State(tx): State<broadcast::Sender<(u64, String)>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = BroadcastStream::new(tx.subscribe()).filter_map(|r| async move {
        // A receiver that lagged skips what it missed, as conduit's default policy does.
        r.ok().map(|(seq, data)| {
            Ok(Event::default()
                .event("tick")
                .id(seq.to_string())
                .data(data))
        })
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:18083".into());
    let (tx, _) = broadcast::channel(256);
    let ticker = tx.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for seq in 1u64.. {
            every.tick().await;
            let _ = ticker.send((seq, format!("{{\"seq\":{seq}}}")));
        }
    });
    let app = Router::new().route("/sse", get(sse)).with_state(tx);
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
