//! Throwaway PostgreSQL databases for tests: each test gets its own database, created on the server
//! named by `HOOKLINE_TEST_DATABASE_URL` and dropped afterwards. Without that variable the
//! PostgreSQL tests are skipped with a notice — except under `CI`, where a missing database fails
//! the run, so CI can't pass by silently skipping them. (`scripts/test` sets the variable, starting
//! a local cluster when needed.)
//!
//! Built only with the crate's `testing` feature (which the dev-dependencies of this crate, the
//! server and the CLI turn on) and for this crate's own unit tests: these helpers panic, so they
//! stay out of the production API and out of release binaries.

use tokio_postgres::NoTls;

pub const ENV: &str = "HOOKLINE_TEST_DATABASE_URL";

/// A database that exists for as long as this value lives.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

/// The admin URL, or `None` (after a notice) when PostgreSQL tests should be skipped.
pub fn admin_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{ENV} is not set: CI must run the PostgreSQL suite (see scripts/test)")
        }
        _ => {
            eprintln!(
                "note: {ENV} is not set; skipping a PostgreSQL test (scripts/test sets it up)"
            );
            None
        }
    }
}

/// `postgres://u@h:p/db?x` with the database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{db}{query}")
}

impl TestDatabase {
    pub async fn create() -> Option<TestDatabase> {
        let admin_url = admin_url()?;
        let name = format!("hookline_test_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin_url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("can't connect to {ENV}={admin_url}: {e}"));
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        drop(client);
        let _ = task.await;
        Some(TestDatabase {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside an async test: do the dropping on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin, NoTls).await.ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Which tables of the database at `url` (`sqlite://…` or `postgres://…`) hold `needle` anywhere
/// in a row's text: every column of every table, as each store sees it. An erasure test expects
/// none.
pub async fn tables_holding(url: &str, needle: &str) -> Vec<String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let c = rusqlite::Connection::open(path).expect("open the SQLite database");
        let tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut found = Vec::new();
        for t in tables {
            let cols: Vec<String> = c
                .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let any = cols
                .iter()
                .map(|col| format!("instr(CAST(\"{col}\" AS TEXT), ?1) > 0"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let n: i64 = c
                .query_row(
                    &format!("SELECT count(*) FROM \"{t}\" WHERE {any}"),
                    [needle],
                    |r| r.get(0),
                )
                .unwrap();
            if n > 0 {
                found.push(t);
            }
        }
        return found;
    }
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("can't connect to {url}: {e}"));
    tokio::spawn(conn);
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut found = Vec::new();
    for t in tables {
        // A row as text holds every column's text.
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM \"{t}\" x WHERE strpos(x::text, $1) > 0"),
                &[&needle],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            found.push(t);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}
