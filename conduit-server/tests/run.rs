//! `conduit_server::run`: builds its runtime with the configured worker count, serves, and
//! returns once SIGTERM has drained the server. Alone in its own test binary, because it
//! signals its own process.
mod common;

use std::time::Duration;

use common::*;
use conduit_core::Request;

#[test]
fn run_uses_the_configured_workers_and_stops_on_sigterm() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = conduit_server::Config::new(addr.to_string()).workers(3);
    let server = std::thread::spawn(move || {
        conduit_server::run(config, |_req: Request| async {
            tokio::runtime::Handle::current()
                .metrics()
                .num_workers()
                .to_string()
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut body = None;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                body = Some(get(addr, "/").await.2);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(body.expect("server came up"), "3");
    });

    let pid = std::process::id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "run() did not return after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
        .join()
        .unwrap()
        .expect("run returns Ok after a graceful shutdown");
}
