//! The database pool against a real SQLite file (deadpool-sqlite, bundled SQLite), the real
//! clock with short limits, and a real server whose shutdown hook closes the pool.
#![cfg(feature = "pool")]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use conduit_core::{IntoResponse, Request, Router, get};
use conduit_server::Server;
use conduit_server::pool::{Object, Pool, PoolConfig, PoolError};
use deadpool_sqlite::{Manager, Runtime};

/// A fresh SQLite database file, removed on drop.
struct DbFile(PathBuf);

impl DbFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "conduit-pool-{name}-{}-{:?}.sqlite",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO items (name) VALUES ('a'), ('b'), ('c');",
        )
        .unwrap();
        Self(path)
    }

    fn manager(&self) -> Manager {
        Manager::from_config(&deadpool_sqlite::Config::new(&self.0), Runtime::Tokio1)
    }

    #[cfg(feature = "sqlite")]
    fn sqlite_manager(&self) -> conduit_server::pool::SqliteManager {
        conduit_server::pool::SqliteManager::new(&deadpool_sqlite::Config::new(&self.0))
    }
}

impl Drop for DbFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Never runs on its own within a test: tests call `maintain()` or set a short interval.
const NO_MAINTENANCE: Option<Duration> = Some(Duration::from_secs(3600));

async fn count(conn: &Object<Manager>) -> i64 {
    conn.interact(|c| c.query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0)))
        .await
        .unwrap()
        .unwrap()
}

async fn checkout(pool: &Pool<Manager>, n: usize) -> Vec<Object<Manager>> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(pool.get().await.unwrap());
    }
    conns
}

#[tokio::test]
async fn queries_a_real_file_and_reports_stats() {
    let db = DbFile::new("stats");
    let pool = Pool::new(
        db.manager(),
        PoolConfig {
            max_open: 4,
            maintenance_interval: NO_MAINTENANCE,
            ..PoolConfig::default()
        },
    )
    .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let conn = pool.get().await.unwrap();
            count(&conn).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 3);
    }
    let s = pool.stats();
    assert_eq!(s.max_open, 4);
    assert!(s.open >= 1 && s.open <= 4, "{s:?}");
    assert_eq!((s.in_use, s.idle, s.waiting), (0, s.open, 0));

    let held = pool.get().await.unwrap();
    let s = pool.stats();
    assert_eq!((s.in_use, s.idle), (1, s.open - 1));
    drop(held);
}

#[tokio::test]
async fn maintenance_trims_idle_connections_beyond_max_idle() {
    let db = DbFile::new("trim");
    let pool = Pool::new(
        db.manager(),
        PoolConfig {
            max_open: 5,
            max_idle: 2,
            maintenance_interval: NO_MAINTENANCE,
            ..PoolConfig::default()
        },
    )
    .unwrap();
    drop(checkout(&pool, 5).await);
    assert_eq!(pool.stats().idle, 5);
    let done = pool.maintain();
    assert_eq!(done.excess_idle, 3);
    let s = pool.stats();
    assert_eq!((s.open, s.idle, s.max_idle_closed), (2, 2, 3), "{s:?}");
    // The two that stayed still work.
    let c = pool.get().await.unwrap();
    assert_eq!(count(&c).await, 3);
}

#[tokio::test]
async fn background_task_closes_connections_idle_past_max_idle_time() {
    let db = DbFile::new("idle");
    let pool = Pool::new(
        db.manager(),
        PoolConfig {
            max_open: 5,
            max_idle_time: Some(Duration::from_millis(200)),
            maintenance_interval: Some(Duration::from_millis(50)),
            ..PoolConfig::default()
        },
    )
    .unwrap();
    drop(checkout(&pool, 3).await);
    assert_eq!(pool.stats().open, 3);
    assert!(
        common::eventually(Duration::from_secs(20), || pool.stats().open == 0).await,
        "{:?}",
        pool.stats()
    );
    assert_eq!(pool.stats().max_idle_time_closed, 3);
}

#[tokio::test]
async fn connections_past_max_lifetime_are_never_handed_out() {
    let db = DbFile::new("lifetime");
    let pool = Pool::new(
        db.manager(),
        PoolConfig {
            max_lifetime: Some(Duration::from_millis(200)),
            maintenance_interval: NO_MAINTENANCE,
            ..PoolConfig::default()
        },
    )
    .unwrap();
    let first = pool.get().await.unwrap();
    let first_id = Object::id(&first);
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = pool.get().await.unwrap();
    assert_ne!(
        Object::id(&second),
        first_id,
        "an expired connection was reused"
    );
    assert_eq!(count(&second).await, 3);
    drop(second);
    let s = pool.stats();
    assert_eq!((s.open, s.max_lifetime_closed), (1, 1), "{s:?}");

    // The maintenance pass retires idle ones past their lifetime too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.maintain().lifetime, 1);
    assert_eq!(pool.stats().open, 0);
}

#[tokio::test]
async fn get_waits_up_to_wait_timeout_when_exhausted() {
    let db = DbFile::new("wait");
    let pool = Pool::new(
        db.manager(),
        PoolConfig {
            max_open: 1,
            wait_timeout: Some(Duration::from_millis(100)),
            maintenance_interval: NO_MAINTENANCE,
            ..PoolConfig::default()
        },
    )
    .unwrap();
    let held = pool.get().await.unwrap();
    match pool.get().await {
        Err(PoolError::Timeout(_)) => {}
        other => panic!("expected a wait timeout, got {:?}", other.map(|_| ())),
    }
    let s = pool.stats();
    assert_eq!((s.wait_count, s.in_use), (1, 1), "{s:?}");
    assert!(s.wait_duration > Duration::ZERO);
    drop(held);
    assert!(pool.get().await.is_ok());
}

#[tokio::test]
async fn shutdown_hook_closes_the_pool_after_the_drain() {
    common::init_tracing();
    let db = DbFile::new("shutdown");
    let pool = Pool::new(db.manager(), PoolConfig::default()).unwrap();
    let server = Server::bind(common::config()).await.unwrap();
    pool.close_on_shutdown(&server);
    let app = Router::new().route(
        "/count",
        get({
            let pool = pool.clone();
            move |_req: Request| {
                let pool = pool.clone();
                async move {
                    match pool.get().await {
                        Ok(conn) => count(&conn).await.to_string().into_response(),
                        Err(e) => conduit_core::Error::new(
                            conduit_core::http::StatusCode::SERVICE_UNAVAILABLE,
                            e.to_string(),
                        )
                        .into_response(),
                    }
                }
            }
        }),
    );
    let running = common::start_server(server, app);
    let (status, _, body) = common::get(running.addr, "/count").await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"3"[..]));
    assert!(!pool.is_closed());

    running.handle.shutdown();
    tokio::time::timeout(Duration::from_secs(30), running.task)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
    assert!(pool.is_closed());
    assert_eq!(pool.stats().open, 0);
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
}

/// `SqliteManager`: a checkout runs no query (it completes without a trip through the blocking
/// pool), a connection comes back as it was left, and one whose query panicked is closed
/// instead of handed out.
#[cfg(feature = "sqlite")]
mod sqlite_manager {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use conduit_server::pool::{Manager, Pool, PoolConfig, SqliteManager};

    use super::DbFile;

    /// Whether `pool.get()` hands out an idle connection on its first poll.
    fn checkout_is_immediate<M: Manager + 'static>(pool: &Pool<M>) -> bool {
        let mut get = pin!(pool.get());
        match get.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(conn) => {
                assert!(conn.is_ok());
                true
            }
            Poll::Pending => false,
        }
    }

    async fn warm<M: Manager + 'static>(pool: &Pool<M>) {
        assert!(pool.get().await.is_ok());
    }

    /// Of `n` checkouts of an idle connection, how many were handed out on their first poll.
    async fn immediate_checkouts<M: Manager + 'static>(pool: &Pool<M>, n: usize) -> usize {
        let mut immediate = 0;
        for _ in 0..n {
            warm(pool).await;
            if checkout_is_immediate(pool) {
                immediate += 1;
            }
        }
        immediate
    }

    /// deadpool-sqlite's own manager runs `SELECT $1` on the blocking pool at every checkout, so
    /// its first poll waits for that thread (on a quiet machine, 0 of 100 are immediate; under
    /// load the blocking thread can finish before the poll returns, so it is not asserted here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_checkout_runs_no_query() {
        let db = DbFile::new("sqlite-checkout");
        let ours = Pool::new(db.sqlite_manager(), PoolConfig::default()).unwrap();
        assert_eq!(
            immediate_checkouts(&ours, 100).await,
            100,
            "an idle connection is handed out without a query"
        );
        ours.close();
    }

    /// Whether the connection `pool` hands out now is the one that created the TEMP table
    /// `marker` (a TEMP table lives in its connection only).
    async fn same_connection(pool: &Pool<SqliteManager>) -> bool {
        let conn = pool.get().await.unwrap();
        conn.interact(|c| {
            c.query_row("SELECT COUNT(*) FROM temp.marker", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .await
        .unwrap()
        .is_ok()
    }

    #[tokio::test]
    async fn a_connection_comes_back_as_left_and_a_panicked_one_is_replaced() {
        let db = DbFile::new("sqlite-panic");
        let config = PoolConfig {
            max_open: 1,
            ..PoolConfig::default()
        };
        let pool = Pool::new(db.sqlite_manager(), config).unwrap();
        let conn = pool.get().await.unwrap();
        conn.interact(|c| c.execute_batch("CREATE TEMP TABLE marker (x)"))
            .await
            .unwrap()
            .unwrap();
        drop(conn);
        assert!(
            same_connection(&pool).await,
            "the idle connection is reused"
        );

        let conn = pool.get().await.unwrap();
        let panicked = conn
            .interact(|_| -> () { panic!("a query that panics") })
            .await;
        assert!(panicked.is_err());
        assert!(conn.is_mutex_poisoned());
        drop(conn);
        // The poisoned connection is closed; the pool opens a fresh one that works.
        assert!(
            !same_connection(&pool).await,
            "a poisoned connection is never handed out"
        );
        let conn = pool.get().await.unwrap();
        let one: i64 = conn
            .interact(|c| c.query_row("SELECT 1", [], |r| r.get(0)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one, 1);
        drop(conn);
        pool.close();
    }
}
