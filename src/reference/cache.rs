//! The read cache of benchmark mode (`--keep-alive`, unless `--read-cache-ttl 0`): answers of
//! read-only GET routes, keyed by path and query (GET routes take no auth and no body), reused
//! while nothing has been written since they were computed and they are younger than the TTL.
//!
//! Freshness rule: every write the target makes bumps a generation counter before and after it
//! (non-GET routes in `http`, event grouping in `ingest::process`, the batch writer, the alert
//! evaluator). An answer is stored with the generation read *before* its query ran and served
//! only while the counter still has that value, so an answer never hides a write the target made
//! or was making. Writes made behind the target's back (direct SQL) and time windows ("last
//! 24 hours") are seen within the TTL (default 250 ms, Mesher's own flush delay).
//!
//! Mesher reads PostgreSQL on every request; this is a deliberate difference (module docs
//! table), off in the default Mesher-like mode, so that on read-only routes the target is not
//! what limits a driver benchmark.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Entries kept at most; the cache is cleared when it is full (benchmarks hit few keys).
const MAX_ENTRIES: usize = 4096;
/// Answers larger than this are not kept.
const MAX_BODY: usize = 256 * 1024;

/// Generation counter shared by every writer of the target.
#[derive(Debug, Default)]
pub struct Generation(AtomicU64);

impl Generation {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    /// Call before and after every write.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

struct Entry {
    generation: u64,
    at: Instant,
    status: u16,
    body: Bytes,
}

/// The cache (disabled when `ttl` is zero).
pub struct ReadCache {
    ttl: Duration,
    map: Mutex<HashMap<Box<str>, Entry, foldhash::fast::RandomState>>,
}

impl ReadCache {
    pub fn new(ttl: Duration) -> ReadCache {
        ReadCache { ttl, map: Mutex::new(HashMap::default()) }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// A fresh answer for `key`, if any.
    pub fn get(&self, key: &str, generation: &Generation) -> Option<(u16, Bytes)> {
        if !self.enabled() {
            return None;
        }
        let now = generation.current();
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.get(key)?;
        (e.generation == now && e.at.elapsed() < self.ttl).then(|| (e.status, e.body.clone()))
    }

    /// Keep a 200 answer computed from the database state of `generation` (read before the query).
    pub fn put(&self, key: &str, generation: u64, status: u16, body: &Bytes) {
        if !self.enabled() || status != 200 || body.len() > MAX_BODY {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
            map.clear();
        }
        map.insert(key.into(), Entry { generation, at: Instant::now(), status, body: body.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_or_the_ttl_invalidates() {
        let g = Generation::default();
        let c = ReadCache::new(Duration::from_millis(200));
        let body = Bytes::from_static(b"{}");
        let g0 = g.current();
        c.put("/a", g0, 200, &body);
        assert_eq!(c.get("/a", &g).map(|r| r.0), Some(200));
        assert!(c.get("/b", &g).is_none());
        g.bump();
        assert!(c.get("/a", &g).is_none(), "a write since the answer was computed");
        // An answer computed while a write was in flight (generation read before the bump)
        // is never served after it.
        c.put("/a", g0, 200, &body);
        assert!(c.get("/a", &g).is_none());
        c.put("/a", g.current(), 200, &body);
        assert!(c.get("/a", &g).is_some());
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.get("/a", &g).is_none(), "older than the TTL");
        c.put("/e", g.current(), 500, &body);
        assert!(c.get("/e", &g).is_none(), "only 200 answers are kept");
        let off = ReadCache::new(Duration::ZERO);
        off.put("/a", g.current(), 200, &body);
        assert!(off.get("/a", &g).is_none());
    }
}
