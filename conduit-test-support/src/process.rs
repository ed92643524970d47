//! The examples run as child processes, as they are run by hand.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::example_binary;

/// An example binary running as a child process, its stdout and stderr drained on threads (so
/// it never blocks on a full pipe). Killed and reaped on drop if the test ends early.
#[derive(Debug)]
pub struct ExampleProcess {
    name: String,
    child: Option<Child>,
    output: Vec<JoinHandle<String>>,
}

impl ExampleProcess {
    /// Start example `name` ([`example_binary`]) with `RUST_LOG=info` and `NO_COLOR=1`, after
    /// `configure` has set its environment and arguments.
    pub fn spawn(name: &str, configure: impl FnOnce(&mut Command)) -> Self {
        let bin = example_binary(name);
        let mut command = Command::new(&bin);
        command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        let output = pipes
            .into_iter()
            .map(|mut pipe| {
                std::thread::spawn(move || {
                    let mut out = String::new();
                    let _ = pipe.read_to_string(&mut out);
                    out
                })
            })
            .collect();
        Self {
            name: name.to_owned(),
            child: Some(child),
            output,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Wait until something accepts connections on `addr` (panics if the example exits first
    /// or nothing listens within `within`).
    pub async fn wait_listening(&mut self, addr: SocketAddr, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("{} exited early with {status}", self.name);
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {addr} within {within:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Send SIGTERM and wait (at most `within`) for the example to exit; its exit status and
    /// everything it wrote to stdout and stderr.
    pub async fn terminate(mut self, within: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {within:?} of SIGTERM", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let output = self
            .output
            .drain(..)
            .map(|reader| reader.join().unwrap_or_default())
            .collect();
        (status, output)
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
