//! One throwaway PostgreSQL cluster for the whole test binary, a fresh database per test on it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, mpsc};

/// The fixtures' project (`Fixtures::project_id`), as the routes under test spell it.
pub const PROJECT: &str = "33333333-3333-3333-3333-333333333333";

/// The cluster's base URL (…/mesher). The cluster lives on a parked thread for the whole test
/// binary (PostgreSQL is told to stop when the thread that started it exits).
fn cluster_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let c = mesher_stress::db::Cluster::start().expect("throwaway PostgreSQL");
            tx.send(c.url().to_string()).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("cluster url")
    })
}

/// A fresh, empty database on the shared cluster; returns its URL.
pub async fn fresh_db() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = cluster_url().to_string();
    let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let admin = base.replace("/mesher", "/postgres");
    let pool = mesher_stress::db::connect(&admin, 1).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    pool.close().await;
    base.replace("/mesher", &format!("/{name}"))
}

/// A fresh database with schema and fixtures; returns (url, pool, fixtures).
pub async fn seeded_db() -> (String, sqlx::PgPool, mesher_stress::db::Fixtures) {
    let url = fresh_db().await;
    let pool = mesher_stress::db::connect(&url, 4).await.unwrap();
    mesher_stress::db::schema::apply(&pool).await.unwrap();
    let (f, _) = mesher_stress::db::fixtures::seed(&pool, &Default::default()).await.unwrap();
    (url, pool, f)
}
