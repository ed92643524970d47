//! A real `redis-server` for a test: its own free port and temporary folder, no persistence,
//! killed when dropped. Needs `redis-server` and `redis-cli` on `PATH` (scripts/test.sh
//! installs Debian's `redis-server` package when they are missing).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::files::{TempDir, free_addr};

/// One `redis-server` process on 127.0.0.1 and a free port, started with `--save ""
/// --appendonly no` in a temporary folder. [`kill`](Self::kill) is `kill -9`;
/// [`restart`](Self::restart) starts it again on the same port, with no data.
#[derive(Debug)]
pub struct RedisServer {
    addr: SocketAddr,
    dir: TempDir,
    extra: Vec<String>,
    /// Certificate and key (PEM files) when it listens for TLS only.
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a server and wait until it answers `PING`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Start a server with `extra` arguments (e.g. `--cluster-enabled yes`), and wait until it
    /// answers `PING`.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut server = Self {
            addr: free_addr(),
            dir: TempDir::new("redis"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: None,
            child: None,
        };
        server.spawn();
        server
    }

    /// Start a server that speaks TLS only (`--tls-port`, no plain port), with the PEM
    /// certificate `cert` and key `key`, clients unauthenticated; its [`url`](Self::url) is
    /// `rediss://localhost:<port>`.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let mut server = Self {
            addr: free_addr(),
            dir: TempDir::new("redis-tls"),
            extra: Vec::new(),
            tls: Some((cert.to_owned(), key.to_owned())),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        let port = self.addr.port().to_string();
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some((cert, key)) => cmd
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key),
        };
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .expect("redis-server on PATH (scripts/test.sh installs Debian's redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pings() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        if self.tls.is_some() {
            return true; // listening is enough: a TLS PING would need a TLS client here
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `redis://127.0.0.1:<port>` (`rediss://localhost:<port>` for [`start_tls`](Self::start_tls)).
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://{}", self.addr),
            Some(_) => format!("rediss://localhost:{}", self.addr.port()),
        }
    }

    /// Its temporary folder.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `kill -9` the server (and reap it): clients see their connections reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Start it again on the same port (after [`kill`](Self::kill)); it holds no data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Run `redis-cli -p <port> args...` and return what it printed (`--raw` output).
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port(), args)
    }
}

/// Run `redis-cli -h 127.0.0.1 -p <port> --raw args...`; what it printed.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--raw"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli on PATH");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A local Redis Cluster of three primaries (no replicas), each a [`RedisServer`] with
/// `--cluster-enabled yes`, joined with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes, in the order their slots were assigned.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Start three nodes, create the cluster and wait until every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--cluster-require-full-coverage",
            "no",
        ];
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_with(&args)).collect();
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli on PATH");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Wait (up to 20 s) until every running node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never reached state ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis://` URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node serving `key`'s slot (by `CLUSTER KEYSLOT` and each node's `CLUSTER NODES`
    /// `myself` line).
    pub fn node_of(&self, key: &str) -> usize {
        let slot: u16 = self.nodes[0]
            .cli(&["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot number");
        self.nodes
            .iter()
            .position(|n| {
                n.cli(&["cluster", "nodes"])
                    .lines()
                    .find(|l| l.contains("myself"))
                    .is_some_and(|l| {
                        l.split_whitespace().skip(8).any(|range| {
                            let mut it = range.split('-');
                            let lo: u16 = it.next().and_then(|s| s.parse().ok()).unwrap_or(1);
                            let hi: u16 = it.next().and_then(|s| s.parse().ok()).unwrap_or(lo);
                            (lo..=hi).contains(&slot)
                        })
                    })
            })
            .expect("a node serves every slot")
    }
}
