//! `SqliteManager` against a real SQLite file: a checkout runs no query (it completes without
//! a trip through the blocking pool), a connection comes back as it was left, and one whose
//! query panicked is closed instead of handed out.
#![cfg(feature = "sqlite")]

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use conduit_server::pool::{Manager, Pool, PoolConfig, SqliteManager};

/// A fresh SQLite database file, removed on drop.
struct DbFile(PathBuf);

impl DbFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "conduit-sqlite-pool-{name}-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }

    fn config(&self) -> deadpool_sqlite::Config {
        deadpool_sqlite::Config::new(&self.0)
    }
}

impl Drop for DbFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

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
    let db = DbFile::new("checkout");
    let ours = Pool::new(SqliteManager::new(&db.config()), PoolConfig::default()).unwrap();
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
    let db = DbFile::new("panic");
    let config = PoolConfig {
        max_open: 1,
        ..PoolConfig::default()
    };
    let pool = Pool::new(SqliteManager::new(&db.config()), config).unwrap();
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
