//! [`SqliteManager`]: SQLite connections for a [`Pool`](super::Pool) (feature `sqlite`).

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

/// The connection a [`SqliteManager`] pool hands out (deadpool-sqlite's): run queries with
/// [`interact`](deadpool_sqlite::Connection) on tokio's blocking pool.
pub type SqliteConnection = <deadpool_sqlite::Manager as managed::Manager>::Type;

/// deadpool-sqlite's [`Manager`](deadpool_sqlite::Manager) without its check on every
/// checkout.
///
/// deadpool-sqlite checks each connection it hands out with a `SELECT $1` run through
/// `interact`: a trip through tokio's blocking pool (a thread hop and a wake-up each way) on
/// every `pool.get()`, before the caller's own query makes the same trip. A SQLite connection
/// is a file handle inside this process, with no server at the other end to drop it, so the
/// query can only find what Go's `database/sql` does not look for either (it does not ping on
/// checkout). What can break a SQLite connection is a query that panicked inside `interact`,
/// which poisons the connection's mutex: that connection is closed (with a log line) instead
/// of handed out, and the pool opens another. Connections open as deadpool-sqlite opens them.
///
/// On `examples/performance/optimized_server`'s `GET /items/{id}` (one row by primary key)
/// this takes the server's CPU per request from 42–46 to 29–31 µs (see docs/perf.md).
///
/// ```
/// use conduit_server::pool::{Pool, PoolConfig, SqliteManager};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let config = deadpool_sqlite::Config::new(":memory:");
/// let pool = Pool::new(SqliteManager::new(&config), PoolConfig::default()).unwrap();
/// let conn = pool.get().await.unwrap();
/// let two: i64 = conn
///     .interact(|c| c.query_row("SELECT 1 + 1", [], |row| row.get(0)))
///     .await
///     .unwrap()
///     .unwrap();
/// assert_eq!(two, 2);
/// # pool.close();
/// # });
/// ```
#[derive(Debug)]
pub struct SqliteManager(deadpool_sqlite::Manager);

impl SqliteManager {
    /// Connections to the database `config` names, opened on tokio's blocking pool.
    pub fn new(config: &deadpool_sqlite::Config) -> Self {
        Self(deadpool_sqlite::Manager::from_config(
            config,
            deadpool_sqlite::Runtime::Tokio1,
        ))
    }
}

impl managed::Manager for SqliteManager {
    type Type = SqliteConnection;
    type Error = deadpool_sqlite::rusqlite::Error;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        self.0.create().await
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            tracing::warn!("closing a SQLite connection: a query on it panicked");
            return Err(RecycleError::message(
                "a query panicked on this SQLite connection",
            ));
        }
        Ok(())
    }
}
