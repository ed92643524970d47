//! [`Server`]: bind, accept, spawn a task per connection, and shut down gracefully.
//!
//! ```
//! use conduit_core::{Request, Router, get};
//! use conduit_server::{Config, Server};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let app = Router::new().route("/", get(|_req: Request| async { "Hello, World!" }));
//! let server = Server::bind(Config::new("127.0.0.1:0")).await?;
//! println!("listening on http://{}", server.local_addr());
//! # server.handle().shutdown();
//! server.serve(app).await // until SIGINT / SIGTERM or `handle().shutdown()`
//! # }).unwrap();
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use conduit_core::{ConnectInfo, Handler};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
#[cfg(feature = "tls")]
use tokio_rustls::TlsAcceptor;

use crate::conn::{self, ConnContext};
use crate::shutdown::{ConnGuard, ShutdownHandle};
use crate::{Config, ServerError};

/// A bound server, ready to [`serve`](Server::serve) a handler.
pub struct Server {
    config: Config,
    listener: TcpListener,
    local_addr: SocketAddr,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
    handle: ShutdownHandle,
}

/// What a TLS connection's task needs: the acceptor and the handshake's time limit.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct Tls {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Check the config, load TLS files and bind the listener.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        config.validate()?;
        #[cfg(feature = "tls")]
        let tls = match &config.tls {
            Some(t) => Some(Tls {
                acceptor: crate::tls::acceptor(t, config.http2)?,
                handshake_timeout: t.handshake_timeout,
            }),
            None => None,
        };
        let addr = config.socket_addr()?;
        let listener =
            bind_listener(addr, &config).map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Self {
            config,
            listener,
            local_addr,
            #[cfg(feature = "tls")]
            tls,
            handle: ShutdownHandle::new(),
        })
    }

    /// Whether connections are served over TLS.
    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to trigger or watch graceful shutdown, and to build the readiness handler.
    pub fn handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Add a cleanup hook, run once after the drain (see [`crate::shutdown`]).
    pub fn on_shutdown<F, Fut>(&self, name: impl Into<String>, hook: F)
    where
        F: FnOnce(Duration) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.handle.inner.hooks.add(name, hook);
    }

    /// Serve `handler` until graceful shutdown completes.
    pub async fn serve<H: Handler>(self, handler: H) -> Result<(), ServerError> {
        let is_tls = self.is_tls();
        let Server {
            config,
            listener,
            local_addr,
            #[cfg(feature = "tls")]
            tls,
            handle,
        } = self;
        let ctx = Arc::new(ConnContext::new(handler, &config, handle.clone()));
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let signals = config
            .handle_signals
            .then(Signals::install)
            .flatten()
            .map(|signals| tokio::spawn(watch_signals(signals, handle.clone())));
        tracing::info!(addr = %local_addr, tls = is_tls, "listening");

        let drain_delay = config.drain_delay;
        let stop = async {
            handle.draining().await;
            if !drain_delay.is_zero() {
                tracing::info!(
                    ?drain_delay,
                    "readiness is 503; still serving during the drain delay"
                );
                tokio::time::sleep(drain_delay).await;
            }
        };
        let mut stop = std::pin::pin!(stop);

        loop {
            let permit = tokio::select! {
                biased;
                () = &mut stop => break,
                p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut stop => break,
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => { accept_error(e).await; continue; }
                },
            };
            if config.tcp_nodelay {
                let _ = stream.set_nodelay(true);
            }
            let shared = handle.inner.clone();
            let (id, drain) = shared.conns.register();
            let guard = ConnGuard {
                shared: shared.clone(),
                id,
            };
            let ctx = ctx.clone();
            // Two task shapes rather than one future covering both. A task's future is as large
            // as its largest state and lives as long as the connection: with the TLS states in
            // it (the rustls handshake and session, a hyper connection over `TlsStream`, the
            // HTTP/2 preface path of `conn::serve_tls`) a plain-text connection's future was
            // 12.7 KB; on its own it is 2.3 KB. 10,000 idle keep-alive clients: 251 -> 179 MiB
            // resident (`scripts/stream_bench.sh`).
            let hold = (guard, permit);
            #[cfg(feature = "tls")]
            let task = match tls.clone() {
                None => tokio::spawn(plain(ctx, stream, peer, local_addr, drain, hold)),
                Some(tls) => {
                    tokio::spawn(over_tls(ctx, tls, stream, peer, local_addr, drain, hold))
                }
            };
            #[cfg(not(feature = "tls"))]
            let task = tokio::spawn(plain(ctx, stream, peer, local_addr, drain, hold));
            shared.conns.set_abort(id, task.abort_handle());
        }

        drop(listener);
        let conns = &handle.inner.conns;
        let deadline = Instant::now() + config.shutdown_timeout;
        tracing::info!(open = conns.len(), timeout = ?config.shutdown_timeout, "stopped accepting; draining connections");
        conns.drain_all();
        handle.streams().trigger();
        if !conns.wait_empty(deadline).await {
            let n = conns.abort_all();
            tracing::warn!(
                connections = n,
                "shutdown deadline reached; force-closing connections"
            );
            conns
                .wait_empty(Instant::now() + Duration::from_secs(1))
                .await;
        }
        handle.inner.hooks.run(deadline).await;
        if let Some(s) = signals {
            s.abort();
        }
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Build a multi-threaded runtime with `config`'s worker count, bind, and serve `handler`
/// until shutdown. For cleanup hooks, use [`Server`] inside your own runtime instead.
pub fn run<H: Handler>(config: Config, handler: H) -> Result<(), ServerError> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.workers {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move { Server::bind(config).await?.serve(handler).await })
}

fn bind_listener(addr: SocketAddr, config: &Config) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(config.backlog)?;
    TcpListener::from_std(socket.into())
}

async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock => {
            tracing::debug!(error = %e, "accept failed");
        }
        _ => {
            // Out of file descriptors and the like: back off instead of spinning.
            tracing::error!(error = %e, "accept failed; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A plain-text connection's task. `hold` (the connection's registration and permit) is
/// dropped when the connection ends.
async fn plain<H: Handler>(
    ctx: Arc<ConnContext<H>>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: SocketAddr,
    drain: oneshot::Receiver<()>,
    hold: impl Send + 'static,
) {
    let _hold = hold;
    let info = connect_info(&stream, peer, listener);
    let accepted = Instant::now();
    conn::serve_plain(ctx, stream, info, drain, accepted).await;
}

/// A TLS connection's task: the handshake, then the protocol ALPN chose.
#[cfg(feature = "tls")]
async fn over_tls<H: Handler>(
    ctx: Arc<ConnContext<H>>,
    tls: Tls,
    stream: TcpStream,
    peer: SocketAddr,
    listener: SocketAddr,
    drain: oneshot::Receiver<()>,
    hold: impl Send + 'static,
) {
    let _hold = hold;
    let info = connect_info(&stream, peer, listener);
    let handshake = handshake(&tls.acceptor, stream, peer, tls.handshake_timeout);
    let Some(tls_stream) = handshake.await else {
        return;
    };
    let session = tls_stream.get_ref().1;
    // ALPN decides: `h2` is HTTP/2 only, anything else HTTP/1.1 only.
    let protocol = match session.alpn_protocol() {
        Some(b"h2") => conn::Protocol::Http2,
        _ => conn::Protocol::Http1,
    };
    let info = info.with_tls(session.alpn_protocol(), session.server_name());
    conn::serve_tls(ctx, tls_stream, info, protocol, drain).await;
}

/// One getsockname per connection: with a wildcard bind, the listener's address is not the
/// address the client reached.
fn connect_info(stream: &TcpStream, peer: SocketAddr, listener: SocketAddr) -> ConnectInfo {
    ConnectInfo::new(peer, stream.local_addr().unwrap_or(listener))
}

#[cfg(feature = "tls")]
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%peer, ?timeout, "TLS handshake timed out");
            None
        }
    }
}

/// SIGINT / SIGTERM listeners, installed synchronously when serving starts, so a signal that
/// arrives right after startup already means "shut down gracefully", never the default "die".
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some(Self { int, term }),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot install SIGINT/SIGTERM handlers; shutdown only via the handle");
                    None
                }
            }
        }
        #[cfg(not(unix))]
        Some(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT received"),
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// First signal: graceful shutdown. Second signal: close every connection now.
async fn watch_signals(mut signals: Signals, handle: ShutdownHandle) {
    signals.recv().await;
    handle.shutdown();
    signals.recv().await;
    let n = handle.inner.conns.abort_all();
    tracing::warn!(
        connections = n,
        "second signal: force-closing connections now"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open connection holds its task's future for as long as it lives, so that size is
    /// memory per idle keep-alive client: the plain-text task must not carry the TLS states
    /// (handshake, session, a second hyper connection type) or the HTTP/2-preface path.
    #[tokio::test]
    async fn plain_connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let handler = |_req: conduit_core::Request| async { "ok" };
        let config = Config::new("127.0.0.1:0");
        let ctx = Arc::new(ConnContext::new(handler, &config, ShutdownHandle::new()));
        let (_tx, drain) = oneshot::channel();
        let task = plain(ctx, stream, peer, addr, drain, ());
        let size = std::mem::size_of_val(&task);
        drop((task, client));
        // Release: 1.9 KB (2.3 KB through hyper-util's `auto` connection, sized for HTTP/2;
        // 12.7 KB with the TLS path in the same future).
        assert!(size < 4096, "plain-text connection task is {size} bytes");
    }
}
