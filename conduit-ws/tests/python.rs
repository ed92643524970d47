//! Python's `websockets` package (a second, independent RFC 6455 client) against the same
//! server: tests/py/client.py runs its checks and exits non-zero on the first failure.
//!
//! The interpreter is `$CONDUIT_WS_PYTHON`, else the virtual environment scripts/test.sh
//! creates at `target/py-venv` (`python3 -m venv target/py-venv &&
//! target/py-venv/bin/pip install websockets`).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::*;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONDUIT_WS_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py-venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with `websockets`: run scripts/test.sh (it creates {}), or set CONDUIT_WS_PYTHON",
        venv.display()
    );
    venv
}

#[tokio::test]
async fn python_websockets_client_passes_its_checks() {
    let srv = start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/client.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python())
            .arg(script)
            .arg(srv.addr.to_string())
            .arg(MAX_FRAME.to_string())
            .arg(MAX_MESSAGE.to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finishes")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for check in [
        "echo_sizes",
        "fragments",
        "ping_pong",
        "subprotocol",
        "close_handshake",
        "too_big",
        "foreign_origin",
        "keep_alive",
        "deflate_without_context_takeover",
        "deflate_with_context_takeover",
        "no_deflate_when_not_offered",
        "compression_bomb",
    ] {
        assert!(
            stdout.contains(&format!("ok {check}\n")),
            "{check} did not run: {stdout}"
        );
    }
    srv.handle.shutdown();
    srv.task.await.unwrap().unwrap();
}
