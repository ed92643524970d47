//! [`Redis`]: where a conduit instance finds Redis (one node or a Cluster), with the pooled
//! connections for commands and a way to open the dedicated connection a stream reader blocks on.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

/// How long one blocking `XREAD` (the hub's reader) waits before it is sent again; the
/// reader's connection allows this much more than the command timeout for a response.
pub(crate) const BLOCK: Duration = Duration::from_secs(5);

/// The default prefix of every key conduit-redis writes.
pub const DEFAULT_PREFIX: &str = "conduit:";
/// The default bound of one command (connecting included).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// How a conduit instance reaches Redis: one node (`redis://` or `rediss://` URL, commands
/// through a deadpool-redis pool) or a Redis Cluster (redis-rs's cluster client, keys carry
/// hash tags). Cheap to clone; clones share the pool.
///
/// Nothing connects until the first command, so an instance starts while Redis is down.
///
/// ```
/// use std::time::Duration;
/// use conduit_redis::Redis;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let redis = Redis::builder("redis://127.0.0.1:6379")
///     .prefix("myapp:")
///     .command_timeout(Duration::from_millis(200))
///     .build()
///     .unwrap();
/// assert_eq!(redis.key("hub", "ticks"), "myapp:hub:{ticks}");
/// # });
/// ```
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    prefix: String,
    timeout: Duration,
}

enum Kind {
    Single(Box<Single>),
    Cluster(Box<Cluster>),
}

/// One node: connections checked out of a deadpool-redis pool and kept in slots, each shared
/// (multiplexed: concurrent commands pipeline on it) until a command on it fails, when it goes
/// back to the pool (whose recycle check then drops it if it is broken).
///
/// One command at a time fills an empty slot (`fill`); the others wait for it and share what
/// it got. The pool holds one connection a slot, so the filler never waits for a connection
/// another slot keeps.
struct Single {
    client: redis::Client,
    pool: deadpool_redis::Pool,
    slots: Box<[std::sync::Mutex<Option<deadpool_redis::Connection>>]>,
    fill: Box<[tokio::sync::Mutex<()>]>,
    next: AtomicUsize,
}

impl Single {
    fn slot(&self, i: usize) -> std::sync::MutexGuard<'_, Option<deadpool_redis::Connection>> {
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection of slot `i`, checked out of the pool if the slot is empty (by one caller
    /// at a time; boxed by the caller, so the common path's future stays small).
    async fn fill(&self, i: usize) -> RedisResult<redis::aio::MultiplexedConnection> {
        let _filling = self.fill[i].lock().await;
        if let Some(c) = self.slot(i).as_ref() {
            return Ok((**c).clone());
        }
        let obj = self.pool.get().await.map_err(|e| match e {
            deadpool_redis::PoolError::Backend(e) => e,
            e => RedisError::from((redis::ErrorKind::IoError, "pool", e.to_string())),
        })?;
        let shared = (*obj).clone();
        *self.slot(i) = Some(obj);
        Ok(shared)
    }
}

struct Cluster {
    client: ClusterClient,
    reader: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner.kind {
            Kind::Single(_) => "single",
            Kind::Cluster(_) => "cluster",
        };
        f.debug_struct("Redis")
            .field("kind", &kind)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

/// Configures a [`Redis`]: [`Redis::builder`] for one node, [`Redis::cluster`] for a Cluster.
#[derive(Debug, Clone)]
pub struct RedisBuilder {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    timeout: Duration,
    pool_size: usize,
    root_cert: Option<Vec<u8>>,
}

impl RedisBuilder {
    /// The prefix of every key (default [`DEFAULT_PREFIX`]).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound of one command, connecting included (default [`DEFAULT_COMMAND_TIMEOUT`]): a
    /// publish or a rate-limit check during an outage fails within it.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How many command connections to one node are shared (default 2; each is multiplexed,
    /// so concurrent commands pipeline on it).
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// For `rediss://` URLs: trust this CA (PEM) instead of the system's roots (a private CA,
    /// or a self-signed test server).
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert = Some(pem.into());
        self
    }

    fn tls(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: None,
            root_cert: self.root_cert.clone(),
        }
    }

    /// The handle. Fails only for a malformed URL; nothing connects yet.
    pub fn build(self) -> RedisResult<Redis> {
        let kind = if self.cluster {
            let builder = || {
                let b = ClusterClient::builder(self.urls.clone())
                    .connection_timeout(self.timeout)
                    .retries(1);
                match self.root_cert {
                    Some(_) => b.certs(self.tls()),
                    None => b,
                }
            };
            Kind::Cluster(Box::new(Cluster {
                client: builder().response_timeout(self.timeout).build()?,
                // The reader blocks in XREAD: its replies may take the whole block time.
                reader: builder().response_timeout(BLOCK + self.timeout).build()?,
                conn: OnceCell::new(),
            }))
        } else {
            let url = self.urls.first().cloned().unwrap_or_default();
            let client = match self.root_cert {
                Some(_) => redis::Client::build_with_tls(url.as_str(), self.tls())?,
                None => redis::Client::open(url.as_str())?,
            };
            // The pool's connections use the client's connection info (TLS parameters included).
            let manager = deadpool_redis::Manager::new(client.get_connection_info().clone())?;
            let pool = deadpool_redis::Pool::builder(manager)
                .max_size(self.pool_size)
                .wait_timeout(Some(self.timeout))
                .create_timeout(Some(self.timeout))
                .recycle_timeout(Some(self.timeout))
                .runtime(deadpool_redis::Runtime::Tokio1)
                .build()
                .map_err(|e| {
                    RedisError::from((redis::ErrorKind::InvalidClientConfig, "pool", e.to_string()))
                })?;
            Kind::Single(Box::new(Single {
                client,
                pool,
                slots: (0..self.pool_size).map(|_| Default::default()).collect(),
                fill: (0..self.pool_size).map(|_| Default::default()).collect(),
                next: AtomicUsize::new(0),
            }))
        };
        Ok(Redis {
            inner: Arc::new(Inner {
                kind,
                prefix: self.prefix,
                timeout: self.timeout,
            }),
        })
    }
}

impl Redis {
    /// Configure a handle to the one Redis node at `url` (`redis://host:port/db` or
    /// `rediss://` for TLS).
    pub fn builder(url: impl Into<String>) -> RedisBuilder {
        RedisBuilder {
            urls: vec![url.into()],
            cluster: false,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_COMMAND_TIMEOUT,
            pool_size: 2,
            root_cert: None,
        }
    }

    /// Configure a handle to the Redis Cluster that `urls` (some of its nodes) belong to.
    pub fn cluster<I: IntoIterator<Item = S>, S: Into<String>>(urls: I) -> RedisBuilder {
        RedisBuilder {
            urls: urls.into_iter().map(Into::into).collect(),
            cluster: true,
            ..Self::builder("")
        }
    }

    /// A handle to `url` with the defaults.
    pub fn open(url: &str) -> RedisResult<Self> {
        Self::builder(url).build()
    }

    /// The key of `name` in `space`: `{prefix}{space}:{{name}}`. The braces are a Cluster
    /// hash tag, so everything about one name lives on one shard.
    pub fn key(&self, space: &str, name: &str) -> String {
        self.key_of(space, name)
    }

    /// [`key`](Self::key) of a name written by its `Display`, in one allocation.
    pub(crate) fn key_of(&self, space: &str, name: impl fmt::Display) -> String {
        use fmt::Write as _;
        let mut key = String::with_capacity(self.inner.prefix.len() + space.len() + 48);
        let _ = write!(key, "{}{space}:{{{name}}}", self.inner.prefix);
        key
    }

    /// The bound of one command.
    pub fn command_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Run `f` on a shared connection, the whole of it (checkout included) bounded by the
    /// command timeout. When a command fails for want of Redis (I/O, dropped, timed out), every
    /// shared connection goes back to the pool (whose recycle check drops the broken ones).
    pub(crate) async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut Conn) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let work = async {
            let mut conn = self.conn().await?;
            f(&mut conn).await
        };
        let result = match tokio::time::timeout(self.inner.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        };
        if let (Err(e), Kind::Single(single)) = (&result, &self.inner.kind)
            && (e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
        {
            // Redis went away (or this connection did): the other shared connections are most
            // likely dead too, and would each fail one command once Redis is back.
            for i in 0..single.slots.len() {
                single.slot(i).take();
            }
        }
        result
    }

    async fn conn(&self) -> RedisResult<Conn> {
        match &self.inner.kind {
            Kind::Single(single) => {
                let i = single.next.fetch_add(1, Ordering::Relaxed) % single.slots.len();
                if let Some(c) = single.slot(i).as_ref() {
                    return Ok(Conn::Multiplexed(Box::new((**c).clone())));
                }
                Box::pin(single.fill(i))
                    .await
                    .map(|c| Conn::Multiplexed(Box::new(c)))
            }
            Kind::Cluster(c) => c
                .conn
                .get_or_try_init(|| c.client.get_async_connection())
                .await
                .cloned()
                .map(Conn::Cluster),
        }
    }

    /// A connection of its own, for a reader that blocks in `XREAD`.
    pub(crate) async fn dedicated(&self) -> RedisResult<Conn> {
        let timeout = self.inner.timeout;
        let connect = async {
            match &self.inner.kind {
                Kind::Single(single) => {
                    let cfg = AsyncConnectionConfig::new()
                        .set_connection_timeout(timeout)
                        .set_response_timeout(BLOCK + timeout);
                    single
                        .client
                        .get_multiplexed_async_connection_with_config(&cfg)
                        .await
                        .map(|c| Conn::Multiplexed(Box::new(c)))
                }
                Kind::Cluster(c) => c.reader.get_async_connection().await.map(Conn::Cluster),
            }
        };
        match tokio::time::timeout(timeout * 2, connect).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        }
    }
}

fn timed_out() -> RedisError {
    RedisError::from((redis::ErrorKind::IoError, "Redis command timed out"))
}

/// A connection of any kind [`Redis`] hands out.
pub(crate) enum Conn {
    Multiplexed(Box<redis::aio::MultiplexedConnection>),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Multiplexed(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
