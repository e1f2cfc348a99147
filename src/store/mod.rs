//! Persistence through `diesel-async`: PostgreSQL in production, embedded
//! SQLite by default. See `docs/storage.md` for the schema and for what is
//! acknowledged when.
//!
//! - [`Db`]: the connection pool of either backend, with a timeout on every
//!   operation, so a dead database turns into `UNAVAILABLE`, not a hang.
//!   Every operation runs on the store's own runtime (see [`Db::timed`]).
//! - [`messages::DbLog`]: the durable [`MessageLog`](crate::broker::MessageLog):
//!   `seq` is assigned inside the database transaction, writes are batched
//!   (group commit) by one writer task.
//! - [`notifications::Notifications`]: stored notifications.
//! - [`rooms::RoomStore`]: managed rooms and their memberships.
//! - [`records::Records`]: connections, membership, presence and the audit
//!   log, written in the background from a bounded queue, retried with
//!   backoff while the database is down.
//!
//! One query text serves both backends: [`with_conn!`] and [`with_tx!`]
//! expand the same body once per backend, so each is type-checked against
//! its own connection type.

pub mod announcements;
pub mod lifecycle;
pub mod messages;
pub mod notifications;
pub mod records;
pub mod revocations;
pub mod rooms;
pub mod schema;
mod unnest;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

pub use crate::broker::StoreError;
use crate::config::DatabaseSettings;

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Where the data lives, from `DATABASE_URL` (or `database.url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Empty: the embedded SQLite file `<data_dir>/realtime.db`.
    pub fn parse(url: &str, data_dir: &str) -> Result<Self, String> {
        if url.is_empty() {
            return Ok(DatabaseUrl::Sqlite(
                PathBuf::from(data_dir).join("realtime.db"),
            ));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(
                    "DATABASE_URL sqlite: needs a file path, e.g. sqlite://data/realtime.db".into(),
                );
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        Err(format!(
            "unsupported DATABASE_URL {:?}: use postgres://… or sqlite://<file>",
            redact_url(url)
        ))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "postgres",
            DatabaseUrl::Sqlite(_) => "sqlite",
        }
    }

    /// For logs: the password, if any, is hidden.
    pub fn describe(&self) -> String {
        match self {
            DatabaseUrl::Postgres(url) => redact_url(url),
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }
}

/// Hides the password of a `scheme://user:password@host/...` URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

pub enum Pools {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// The runtime every database operation runs on (two threads named
/// `store`). diesel-async runs a SQLite statement on a blocking thread, and
/// a future dropped while one runs waits for it with `block_in_place`, which
/// panics on the single-threaded runtimes of actix's arbiters (it took the
/// room registry down when a timeout fired during a busy wait). Here that
/// wait is allowed, and no database future is ever dropped on an arbiter.
fn store_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store")
            .enable_all()
            .build()
            .expect("cannot start the store's runtime")
    })
}

/// The pool of either backend, with the operation timeout.
#[derive(Clone)]
pub struct Db {
    pools: Arc<Pools>,
    timeout: Duration,
    url: Arc<DatabaseUrl>,
}

/// Runs `$body` with `$conn: &mut <backend connection>` from the pool.
/// Inside, `?` converts diesel errors into [`StoreError`].
#[macro_export]
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {{
        match $db.pools() {
            $crate::store::Pools::Postgres(pool) => {
                let mut obj = pool.get().await.map_err($crate::store::pool_error)?;
                let $conn: &mut diesel_async::AsyncPgConnection = &mut obj;
                $body
            }
            $crate::store::Pools::Sqlite(pool) => {
                let mut obj = pool.get().await.map_err($crate::store::pool_error)?;
                let $conn: &mut $crate::store::SqliteConn = &mut obj;
                $body
            }
        }
    }};
}

/// Like [`with_conn!`], inside one transaction (`BEGIN IMMEDIATE` on
/// SQLite, so concurrent writers queue on the lock instead of failing).
#[macro_export]
macro_rules! with_tx {
    ($db:expr, |$conn:ident| $body:expr) => {{
        match $db.pools() {
            $crate::store::Pools::Postgres(pool) => {
                let mut obj = pool.get().await.map_err($crate::store::pool_error)?;
                let c: &mut diesel_async::AsyncPgConnection = &mut obj;
                diesel_async::AsyncConnection::transaction::<_, $crate::store::StoreError, _>(
                    c,
                    async |$conn| $body,
                )
                .await
            }
            $crate::store::Pools::Sqlite(pool) => {
                let mut obj = pool.get().await.map_err($crate::store::pool_error)?;
                let c: &mut $crate::store::SqliteConn = &mut obj;
                c.immediate_transaction::<_, $crate::store::StoreError, _>(async |$conn| $body)
                    .await
            }
        }
    }};
}

pub fn pool_error<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Unavailable(format!("database unavailable: {e}"))
}

impl From<diesel::result::Error> for StoreError {
    /// Sorts diesel's errors by what a caller can do about them: a broken
    /// constraint or unstorable data is refused for good, anything about the
    /// connection (or SQLite's lock) may pass.
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        match &e {
            Error::DatabaseError(Kind::UniqueViolation, _) => StoreError::Conflict(e.to_string()),
            Error::DatabaseError(
                Kind::ForeignKeyViolation | Kind::NotNullViolation | Kind::CheckViolation,
                _,
            ) => StoreError::Refused(e.to_string()),
            Error::DatabaseError(Kind::Unknown, info) => {
                let text = info.message().to_ascii_lowercase();
                if text.contains("locked") || text.contains("busy") {
                    StoreError::Unavailable(format!("database error: {e}"))
                } else {
                    StoreError::Refused(e.to_string())
                }
            }
            Error::NotFound
            | Error::SerializationError(_)
            | Error::DeserializationError(_)
            | Error::QueryBuilderError(_) => StoreError::Refused(e.to_string()),
            _ => StoreError::Unavailable(format!("database error: {e}")),
        }
    }
}

impl Db {
    /// Builds the pool. Connections are made lazily, so this succeeds even
    /// while the database is down; operations then fail with
    /// `UNAVAILABLE` until it is back.
    pub fn connect(url: DatabaseUrl, cfg: &DatabaseSettings) -> Result<Self, String> {
        let size = cfg.pool_size.max(1);
        let pools = match &url {
            DatabaseUrl::Postgres(u) => {
                let mut mc = ManagerConfig::<AsyncPgConnection>::default();
                mc.recycling_method = RecyclingMethod::Verified;
                let manager = AsyncDieselConnectionManager::new_with_config(u.clone(), mc);
                Pools::Postgres(
                    Pool::builder(manager)
                        .max_size(size)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
            }
            DatabaseUrl::Sqlite(path) => {
                ensure_parent(path)?;
                use_wal(path)?;
                let mut mc = ManagerConfig::<SqliteConn>::default();
                mc.custom_setup = Box::new(|url| {
                    let url = url.to_string();
                    async move {
                        let mut conn = SqliteConn::establish(&url).await?;
                        conn.batch_execute(SQLITE_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager =
                    AsyncDieselConnectionManager::new_with_config(path.to_string_lossy(), mc);
                Pools::Sqlite(
                    Pool::builder(manager)
                        .max_size(size)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
            }
        };
        Ok(Db {
            pools: Arc::new(pools),
            timeout: cfg.timeout.max(Duration::from_millis(1)),
            url: Arc::new(url),
        })
    }

    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `op` (given its own handle on this pool) with the operation
    /// timeout, as a task on the store's own runtime ([`store_runtime`]). A
    /// caller that stops waiting (an actor that stopped, say) leaves the
    /// operation to finish or time out there.
    pub async fn timed<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Db) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let limit = self.timeout;
        let task = store_runtime().spawn(tokio::time::timeout(limit, op(self.clone())));
        match task.await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Timeout(limit.as_millis() as u64)),
            Err(e) => Err(StoreError::Unavailable(format!(
                "database operation failed: {e}"
            ))),
        }
    }

    /// `SELECT 1`, for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.timed(|db| async move {
            with_conn!(db, |conn| {
                conn.batch_execute("SELECT 1").await?;
                Ok(())
            })
        })
        .await
    }
}

/// Every pooled SQLite connection: the busy timeout makes a second writer
/// wait for the lock instead of failing. (WAL is set once, by [`use_wal`]:
/// `PRAGMA journal_mode` wants the lock even when the file is in WAL mode
/// already, and can fail at once with "database is locked" when a pool
/// connection is opened while another one writes.)
const SQLITE_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// Puts the SQLite file in WAL mode (readers work beside the one writer),
/// before the pool opens any connection. The mode is stored in the file.
fn use_wal(path: &std::path::Path) -> Result<(), String> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;",
    )
    .map_err(|e| format!("cannot switch {} to WAL mode: {e}", path.display()))
}

fn ensure_parent(path: &std::path::Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// Applies the pending migrations of the backend; returns their names.
///
/// Runs on a runtime of its own (diesel's migration harness is blocking),
/// so call it before the server's runtime starts or from a plain thread.
pub fn migrate(url: &DatabaseUrl) -> Result<Vec<String>, String> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            ensure_parent(path)?;
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let applied = conn
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| format!("migration failed: {e}"))?;
            Ok(applied.iter().map(|v| v.to_string()).collect())
        }
        DatabaseUrl::Postgres(u) => {
            let u = u.clone();
            let described = url.describe();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async move {
                    // On a worker thread: the harness uses block_in_place.
                    tokio::spawn(async move {
                        let conn = tokio::time::timeout(
                            Duration::from_secs(10),
                            AsyncPgConnection::establish(&u),
                        )
                        .await
                        .map_err(|_| format!("cannot connect to {described}: timed out"))?
                        .map_err(|e| format!("cannot connect to {described}: {e}"))?;
                        let mut harness = AsyncMigrationHarness::new(conn);
                        let applied = harness
                            .run_pending_migrations(POSTGRES_MIGRATIONS)
                            .map_err(|e| format!("migration failed: {e}"))?;
                        Ok(applied.iter().map(|v| v.to_string()).collect())
                    })
                    .await
                    .map_err(|e| e.to_string())?
                })
            })
            .join()
            .map_err(|_| "the migration thread panicked".to_string())?
        }
    }
}

/// Milliseconds since the Unix epoch, the unit of every stored time.
/// A protocol integer (any u64) as a database BIGINT: values past i64::MAX
/// mean "beyond every stored seq", so they saturate instead of wrapping to a
/// negative number.
pub fn db_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 with milliseconds, from stored milliseconds.
pub fn ms_to_rfc3339(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    crate::protocol::timestamp(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_sorted_by_what_retrying_can_do() {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        let db = |kind, text: &str| {
            StoreError::from(Error::DatabaseError(kind, Box::new(text.to_string())))
        };
        assert!(matches!(
            db(Kind::UniqueViolation, "dup"),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            db(Kind::NotNullViolation, "null"),
            StoreError::Refused(_)
        ));
        assert!(matches!(
            db(Kind::Unknown, "invalid byte sequence"),
            StoreError::Refused(_)
        ));
        assert!(matches!(
            db(Kind::Unknown, "database is locked"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            db(Kind::ClosedConnection, "gone"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(Error::BrokenTransactionManager),
            StoreError::Unavailable(_)
        ));
        assert!(db(Kind::CheckViolation, "x").is_refusal());
        assert!(!StoreError::Timeout(3000).is_refusal());
        // every kind reaches a client as UNAVAILABLE, saying what failed
        let e = StoreError::Timeout(3000).to_command_error();
        assert_eq!(e.code, crate::protocol::ErrorCode::Unavailable);
        assert_eq!(e.message, "database did not answer within 3000 ms");
    }

    #[test]
    fn protocol_integers_saturate_into_bigint() {
        assert_eq!(db_int(9), 9);
        assert_eq!(db_int(i64::MAX as u64), i64::MAX);
        assert_eq!(db_int(1 << 63), i64::MAX);
        assert_eq!(db_int(u64::MAX), i64::MAX);
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("", "data").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/realtime.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db", "data").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:rel.db", "data").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("rel.db"))
        );
        let pg = DatabaseUrl::parse("postgres://u:secret@h/db", "data").unwrap();
        assert_eq!(pg.backend(), "postgres");
        assert_eq!(pg.describe(), "postgres://u:***@h/db");
        let err = DatabaseUrl::parse("mysql://u:secret@h/db", "data").unwrap_err();
        assert!(
            err.contains("unsupported") && !err.contains("secret"),
            "{err}"
        );
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(ms_to_rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
