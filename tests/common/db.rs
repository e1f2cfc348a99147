//! A fresh database per test, on SQLite or on the PostgreSQL of
//! `services.rs`.

use std::net::SocketAddr;
use std::process::Command;

use super::{pg_addr, Server};

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test: a SQLite file in a temporary
/// directory, or a PostgreSQL database created for the test and dropped
/// afterwards.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// `psql` on database `db` of the tests' PostgreSQL: `-At` output, trimmed.
fn psql(db: &str, sql: &str) -> String {
    let (host, port) = pg_addr().rsplit_once(':').expect("host:port");
    let out = Command::new("psql")
        .args(["-h", host, "-p", port, "-U", "postgres", "-d", db])
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql])
        .output()
        .unwrap_or_else(|e| {
            panic!("the PostgreSQL tests need psql ({e}); install it (Debian/Ubuntu: apt-get install postgresql-client)")
        });
    assert!(
        out.status.success(),
        "the PostgreSQL at {} did not accept `{sql}`: {}",
        pg_addr(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("realtime.db").display());
                TestDb {
                    backend,
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("rt_test_{}", uuid::Uuid::new_v4().simple());
                psql("test", &format!("CREATE DATABASE {name}"));
                TestDb {
                    backend,
                    url: format!("postgres://postgres@{}/{name}", pg_addr()),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Runs `sql` on this PostgreSQL test database; rows as `a|b` lines.
    pub fn query(&self, sql: &str) -> String {
        psql(self.pg_name.as_deref().expect("PostgreSQL only"), sql)
    }

    /// A connection to this SQLite test database that waits (up to 10 s)
    /// for the running server's write lock instead of failing with
    /// "database is locked".
    pub fn sqlite(&self) -> diesel::SqliteConnection {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let path = self.url.strip_prefix("sqlite://").expect("SQLite only");
        let mut conn = diesel::SqliteConnection::establish(path)
            .unwrap_or_else(|e| panic!("open the SQLite test database {path}: {e}"));
        conn.batch_execute("PRAGMA busy_timeout = 10000;")
            .expect("set busy_timeout");
        conn
    }

    /// The same database reached through `host:port` (a proxy).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let name = self
            .pg_name
            .as_deref()
            .expect("only PostgreSQL goes through a proxy");
        format!("postgres://postgres@{addr}/{name}")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            psql(
                "test",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

impl Server {
    /// Starts a server on `db` (its `DATABASE_URL`).
    pub fn start_on(db: &TestDb, extra: &str) -> Server {
        Self::start_with_env(extra, &[("DATABASE_URL", &db.url)])
    }
}
