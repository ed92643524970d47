//! The `basic_server` example as a user runs it: the real binary on a free port, real requests,
//! then SIGTERM and a clean exit after the shutdown hook ran.
//!
//! Cargo gives integration tests no path to example binaries, so this test runs the one
//! `cargo test` / `cargo nextest run` / `cargo build --examples` left next to the test binary
//! (`target/<profile>/examples/basic_server`). `scripts/test.sh` builds the examples first.
mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Kills the child if the test fails before it exits on its own.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn wait_until_serving(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("basic_server exited early with {status}");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "basic_server did not listen on {addr} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn basic_server_serves_and_shuts_down_gracefully_on_sigterm() {
    let bin = example_binary("basic_server");
    let addr = free_addr();
    let child = Command::new(&bin)
        .env("ADDR", addr.to_string())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut guard = Guard(Some(child));
    let child = guard.0.as_mut().unwrap();
    // Drain both pipes on threads so the child never blocks on a full pipe.
    let readers = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = pipe.read_to_string(&mut out);
            out
        })
    });

    wait_until_serving(addr, child).await;

    let r = get(addr, "/").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "Hello, World!"));
    let r = get(addr, "/json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json, serde_json::json!({"message": "Hello, World!"}));
    let r = get(addr, "/health").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "ok"));
    let r = get(addr, "/ready").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "ready"));
    let r = get(addr, "/users/a%20b").await;
    assert_eq!(r.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["id"], "a b");
    let mut c = h2_client(addr).await;
    let r = send(
        &mut c,
        body_req("POST", "/echo", "application/json", r#"{"a":[1,2]}"#),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text()), (200, r#"{"a":[1,2]}"#));
    let r = send(&mut c, body_req("POST", "/echo", "text/plain", "{}")).await;
    assert_eq!(r.status, 415);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let mut json_415 = body_req("POST", "/echo", "text/plain", "{}");
    json_415
        .headers_mut()
        .insert("accept", "application/json".parse().unwrap());
    let r = send(&mut c, json_415).await;
    assert_eq!(r.status, 415);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(problem["status"], 415);
    drop(c);

    // SIGTERM: graceful shutdown, the hook runs, exit status 0.
    let pid = child.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM {pid} failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "basic_server did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    guard.0 = None;
    let output = readers.map(|t| t.join().unwrap()).concat();
    assert!(status.success(), "exit status {status}; output:\n{output}");
    assert!(
        output.contains(&format!("listening on http://{addr}")),
        "the listening address is not logged; output:\n{output}"
    );
    assert!(
        output.contains("SIGTERM received"),
        "no SIGTERM log line; output:\n{output}"
    );
    assert!(
        output.contains("shutdown hook: cleanup done, goodbye"),
        "the shutdown hook did not log; output:\n{output}"
    );
    // The Logging middleware: one access line per request, with the route and the status.
    let access: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("conduit_middleware::logging") && l.contains("request"))
        .collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("/users/{id}") && l.contains("200")),
        "no access-log line for /users/{{id}}; output:\n{output}"
    );
    assert!(
        access.iter().any(|l| l.contains("415")),
        "no access-log line for the 415; output:\n{output}"
    );
}
