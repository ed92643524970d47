//! The hot-file cache: loaded resources (headers prepared, small files' bytes in memory, larger
//! files' open descriptors) by request path, revalidated against the file system at most every
//! `revalidate` interval — nginx's `open_file_cache`, plus the content.
//!
//! It is split into shards, each a `RwLock<HashMap>`, so concurrent lookups of different files
//! rarely meet on a lock; a hit takes one read lock and clones an `Arc`. Hits, misses,
//! evictions and revalidations are counted in relaxed atomics ([`CacheStats`]). When a shard is
//! over its share of the memory budget or of the entry limit, it evicts its least recently
//! used entries.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::load::Resource;

/// Hot-file cache settings (see [`ServeDir::cache`](crate::ServeDir::cache)).
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Files up to this size are held in memory (default 1 MiB). Bigger ones are cached as an
    /// open file with its headers, and streamed.
    pub max_file_size: u64,
    /// The most bytes held in memory across the cache (default 64 MiB).
    pub max_memory: u64,
    /// The most resources cached (default 4096; each larger file holds open descriptors).
    pub max_entries: usize,
    /// How long a cached resource is served without looking at the file system (default
    /// 1 s). After that, the next request stats its files; if they changed, it is reloaded.
    pub revalidate: Duration,
    /// Number of shards (default 16).
    pub shards: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_file_size: 1024 * 1024,
            max_memory: 64 * 1024 * 1024,
            max_entries: 4096,
            revalidate: Duration::from_secs(1),
            shards: 16,
        }
    }
}

/// Counters of a [`ServeDir`](crate::ServeDir)'s hot-file cache, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the cache without touching the file system.
    pub hits: u64,
    /// Requests that had to load the resource (absent, or changed on disk).
    pub misses: u64,
    /// Resources evicted to stay within the memory budget or the entry limit.
    pub evictions: u64,
    /// Revalidations (file system checks of a cached resource past its interval).
    pub revalidations: u64,
    /// Resources cached now.
    pub entries: u64,
    /// Bytes of file content held in memory now.
    pub memory: u64,
}

type Shard = RwLock<HashMap<Box<str>, Arc<Resource>, BuildHasherDefault<FxHasher>>>;

/// The Fx hash (rustc's): a multiply-rotate per word. Keys are request paths of files that
/// exist (misses are never inserted), so a client cannot flood a shard with colliding keys,
/// and a DoS-resistant hash (SipHash, computed twice: shard, then map) is cost without a use.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug)]
pub(crate) struct FileCache {
    pub config: CacheConfig,
    shards: Box<[Shard]>,
    hasher: BuildHasherDefault<FxHasher>,
    epoch: Instant,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    revalidations: AtomicU64,
    entries: AtomicU64,
    memory: AtomicU64,
}

/// What a lookup found.
pub(crate) enum Cached {
    /// Fresh: serve it.
    Fresh(Arc<Resource>),
    /// Past its revalidation time: check it against the file system first.
    Stale(Arc<Resource>),
    Absent,
}

impl FileCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        let shards = config.shards.max(1);
        Self {
            config,
            shards: (0..shards)
                .map(|_| RwLock::new(HashMap::default()))
                .collect(),
            hasher: BuildHasherDefault::default(),
            epoch: Instant::now(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            revalidations: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            memory: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the cache was made: the cache's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn shard(&self, key: &str) -> &Shard {
        // The high bits: the map uses the low ones for its buckets.
        let h = self.hasher.hash_one(key);
        &self.shards[((h >> 32) as usize) % self.shards.len()]
    }

    pub(crate) fn get(&self, key: &str) -> Cached {
        let found = self
            .shard(key)
            .read()
            .ok()
            .and_then(|m| m.get(key).cloned());
        let Some(res) = found else {
            return Cached::Absent;
        };
        let now = self.now_ms();
        let checked = res.checked_ms.load(Relaxed);
        if now.saturating_sub(checked) >= self.config.revalidate.as_millis() as u64 {
            return Cached::Stale(res);
        }
        if res.used_ms.load(Relaxed) != now {
            res.used_ms.store(now, Relaxed);
        }
        self.hits.fetch_add(1, Relaxed);
        Cached::Fresh(res)
    }

    pub(crate) fn count_miss(&self) {
        self.misses.fetch_add(1, Relaxed);
    }

    /// A stale entry was found unchanged on disk: fresh again.
    pub(crate) fn revalidated(&self, res: &Resource) {
        self.revalidations.fetch_add(1, Relaxed);
        let now = self.now_ms();
        res.checked_ms.store(now, Relaxed);
        res.used_ms.store(now, Relaxed);
    }

    /// Insert (or replace) `res` under `key`, evicting least recently used entries of the same
    /// shard while it is over its share of the memory budget or entry limit.
    pub(crate) fn insert(&self, key: &str, res: Resource) -> Arc<Resource> {
        let now = self.now_ms();
        res.checked_ms.store(now, Relaxed);
        res.used_ms.store(now, Relaxed);
        let res = Arc::new(res);
        if res.mem > self.config.max_memory {
            return res; // can never fit
        }
        let n = self.shards.len() as u64;
        let mem_share = (self.config.max_memory / n).max(res.mem);
        let entry_share = (self.config.max_entries as u64).div_ceil(n).max(1);
        let Ok(mut shard) = self.shard(key).write() else {
            return res;
        };
        if let Some(old) = shard.insert(key.into(), res.clone()) {
            self.memory.fetch_sub(old.mem, Relaxed);
            self.entries.fetch_sub(1, Relaxed);
        }
        self.memory.fetch_add(res.mem, Relaxed);
        self.entries.fetch_add(1, Relaxed);
        loop {
            let shard_mem: u64 = shard.values().map(|r| r.mem).sum();
            if shard_mem <= mem_share && shard.len() as u64 <= entry_share {
                break;
            }
            let victim = shard
                .iter()
                .filter(|(k, _)| &***k != key)
                .min_by_key(|(_, r)| r.used_ms.load(Relaxed))
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            if let Some(old) = shard.remove(&victim) {
                self.memory.fetch_sub(old.mem, Relaxed);
                self.entries.fetch_sub(1, Relaxed);
                self.evictions.fetch_add(1, Relaxed);
            }
        }
        res
    }

    /// Forget `key` (its file disappeared).
    pub(crate) fn remove(&self, key: &str) {
        if let Ok(mut shard) = self.shard(key).write() {
            if let Some(old) = shard.remove(key) {
                self.memory.fetch_sub(old.mem, Relaxed);
                self.entries.fetch_sub(1, Relaxed);
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            revalidations: self.revalidations.load(Relaxed),
            entries: self.entries.load(Relaxed),
            memory: self.memory.load(Relaxed),
        }
    }
}
