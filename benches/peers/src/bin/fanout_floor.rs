// The floor of a fan-out over TCP on this machine: no HTTP library, no task per connection.
// It accepts connections, reads each request head, answers an SSE response head (chunked),
// and one task writes every 100 ms the same chunk (`event: tick`, `id: N`, `data:
// {"seq":N}`) to every socket in turn with one `try_write` each. What remains is the kernel's
// cost of a small write on loopback (for both ends: the receiver's TCP work runs on the
// sender's core), which no server can avoid. `scripts/stream_bench.sh --peers` measures it.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Sockets = Arc<Mutex<Vec<TcpStream>>>;

async fn accept(mut s: TcpStream, sockets: Sockets) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    s.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
          transfer-encoding: chunked\r\n\r\n",
    )
    .await?;
    sockets.lock().unwrap().push(s);
    Ok(())
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:18084".into());
    let listener = TcpListener::bind(&addr).await.unwrap();
    let sockets: Sockets = Arc::default();
    let writer = sockets.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for seq in 1u64.. {
            every.tick().await;
            let event = format!("event: tick\nid: {seq}\ndata: {{\"seq\":{seq}}}\n\n");
            let chunk = format!("{:x}\r\n{event}\r\n", event.len());
            // A socket that would block or failed is dropped: at this rate none does.
            writer
                .lock()
                .unwrap()
                .retain(|s| matches!(s.try_write(chunk.as_bytes()), Ok(n) if n == chunk.len()));
        }
    });
    loop {
        let (s, _) = listener.accept().await.unwrap();
        tokio::spawn(accept(s, sockets.clone()));
    }
}
