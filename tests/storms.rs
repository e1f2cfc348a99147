//! Connection storms lose no background records, on both backends: with a
//! small record queue, thousands of connections open and close at full
//! speed, then a SIGTERM closes thousands more at once; afterwards every
//! connection row, close and audit event is in the database.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Backend, Client, Server, TestDb, WAIT};
use futures_util::future::join_all;

/// Connections per wave.
const WAVE: usize = 2000;
/// Connections opened (or closed) at the same time.
const CHUNK: usize = 250;

on_both_backends!(a_storm_and_a_shutdown_lose_no_record);

/// Opens a connection for user `user`, retrying while the server asks to
/// (the per-IP connection rate of the tests' settings, or an upgrade held
/// back while the record queue is behind).
async fn connect(server: &Server, user: String) -> Client {
    let token = server.token(&user, &[]);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match server.connect_with(&token, &[]).await {
            Ok(client) => return client,
            Err((status @ (429 | 503), body)) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{user} still refused after {WAIT:?}: {status} {body}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err((status, body)) => panic!("{user} refused: {status} {body}"),
        }
    }
}

/// Opens `WAVE` connections, `CHUNK` at a time, users `{prefix}{i}`.
async fn open_wave(server: &Server, prefix: &str) -> Vec<Client> {
    let mut clients = Vec::with_capacity(WAVE);
    for start in (0..WAVE).step_by(CHUNK) {
        let chunk =
            (start..WAVE.min(start + CHUNK)).map(|i| connect(server, format!("{prefix}{i}")));
        clients.extend(join_all(chunk).await);
    }
    clients
}

/// The largest "N records have waited in line" the server has logged (0 if
/// none).
fn logged_waits(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split("queue full: ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// `SELECT COUNT(*) …` on the test's database, either backend.
fn count(db: &TestDb, sql: &str) -> i64 {
    match db.backend {
        Backend::Postgres => db.query(sql).parse().expect("a count"),
        Backend::Sqlite => {
            use diesel::prelude::*;
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut conn = db.sqlite();
            let sql = sql.replacen("COUNT(*)", "COUNT(*) AS n", 1);
            let rows: Vec<Count> = diesel::sql_query(&sql).load(&mut conn).expect(&sql);
            rows[0].n
        }
    }
}

async fn a_storm_and_a_shutdown_lose_no_record(backend: Backend) {
    let db = TestDb::new(backend);
    // A queue far smaller than one storm's records: most of them find it
    // full and wait in line.
    let mut server = Server::start_on(&db, "[database]\nbackground_queue = 200\n");

    // Wave 1: opened, then all closed at once by their clients.
    let mut first = open_wave(&server, "a").await;
    while !first.is_empty() {
        let rest = first.split_off(first.len().saturating_sub(CHUNK));
        join_all(rest.into_iter().map(|mut c| async move {
            c.close_with(1000, "bye").await;
        }))
        .await;
    }

    // Wave 2: opened, and closed by the server's shutdown.
    let second = open_wave(&server, "b").await;
    assert_eq!(server.metric("realtime_records_dropped_total").await, 0);
    // Whether wave 1 alone filled the queue depends on the machine; the
    // counter must at least cover every count the log has reported so far.
    let waited = server.metric("realtime_records_waited_total").await;
    let logged = logged_waits(&server.log());
    assert!(
        waited >= logged,
        "the log reported {logged} records waiting, the metric says {waited}"
    );
    server.terminate();
    let closes = join_all(second.into_iter().map(|mut c| async move {
        c.closed(WAIT).await;
    }));
    closes.await;
    let status = server.wait_exit(Duration::from_secs(30));
    let log = server.log();
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        log.contains("records have waited in line"),
        "the queue never filled; the waiting line was not tested"
    );
    assert!(
        !log.contains("not all written"),
        "the shutdown did not write everything:\n{log}"
    );

    let total = 2 * WAVE as i64;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM connections"), total);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM connections WHERE disconnected_at IS NOT NULL"
        ),
        total
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM connections WHERE close_code = 1000"
        ),
        WAVE as i64,
        "wave 1 closed by its clients"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM connections WHERE close_code = 1001"
        ),
        WAVE as i64,
        "wave 2 closed by the shutdown"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_events WHERE kind = 'connect'"
        ),
        total
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_events WHERE kind = 'disconnect'"
        ),
        total
    );
    // every connection's own two events, no other
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM (SELECT DISTINCT kind, connection_id FROM audit_events) AS e"
        ),
        2 * total
    );
}
