//! The writer against a real database.
//!
//! - Batching changes nothing: a mixed sequence of records written in
//!   batches of any size leaves the tables as written one by one (SQLite).
//! - Throughput, measured by hand (ignored by default):
//!   `cargo test --lib records::dbtest -- --ignored --nocapture`, with
//!   `RECORDS_BENCH_PG=postgres://…` (an empty database) for PostgreSQL.
//!   Writes a connection storm's records (open, presence, connect audit,
//!   close, disconnect audit per connection) in the writer's batches.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::{Dest, Record, BATCH};
use crate::config::Settings;
use crate::store::{migrate, DatabaseUrl, Db};

fn storm(n: usize, base: i64) -> Vec<Record> {
    let mut out = Vec::with_capacity(n * 5);
    let audit = |kind, i: usize, at| Record::Audit {
        kind,
        user_id: Some(format!("u{}", i % 100)),
        connection_id: Some(format!("c{i}")),
        detail: json!({ "code": 1000 }),
        at,
    };
    for i in 0..n {
        let at = base + i as i64;
        out.push(Record::ConnectionOpened {
            connection_id: format!("c{i}"),
            user_id: format!("u{}", i % 100),
            remote_addr: Some("127.0.0.1".into()),
            user_agent: None,
            at,
        });
        out.push(Record::Presence {
            user_id: format!("u{}", i % 100),
            status: "online".into(),
            custom_status: None,
            at,
        });
        out.push(audit("connect", i, at));
    }
    for i in 0..n {
        let at = base + (n + i) as i64;
        out.push(Record::ConnectionClosed {
            connection_id: format!("c{i}"),
            user_id: format!("u{}", i % 100),
            code: 1001,
            at,
        });
        out.push(audit("disconnect", i, at));
    }
    out
}

async fn run(url: DatabaseUrl) {
    migrate(&url).expect("migrate");
    let cfg = Settings::load_from(&[]).expect("settings").database;
    let db = Db::connect(url.clone(), &cfg).expect("pool");
    let dest = Dest {
        node_id: "bench".into(),
    };
    let records = storm(4000, 1_700_000_000_000);
    let total = records.len();
    let start = Instant::now();
    for chunk in records.chunks(BATCH) {
        let batch = Arc::new(chunk.to_vec());
        let d = dest.clone();
        db.timed(|db| d.write(db, batch)).await.expect("write");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {total} records in {secs:.2} s: {:.0} records/s",
        url.backend(),
        total as f64 / secs
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn writer_throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(DatabaseUrl::Sqlite(dir.path().join("bench.db"))).await;
    if let Ok(pg) = std::env::var("RECORDS_BENCH_PG") {
        run(DatabaseUrl::Postgres(pg)).await;
    }
}

/// Connections that open, join rooms, leave some, change presence and
/// close, interleaved; some close only after others opened later.
fn mixed() -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 1_700_000_000_000;
    let mut tick = || {
        at += 1;
        at
    };
    for i in 0..40 {
        let (conn, user) = (format!("c{i}"), format!("u{}", i % 6));
        out.push(Record::ConnectionOpened {
            connection_id: conn.clone(),
            user_id: user.clone(),
            remote_addr: Some(format!("10.0.0.{i}")),
            user_agent: (i % 2 == 0).then(|| "ua".to_string()),
            at: tick(),
        });
        out.push(Record::Presence {
            user_id: user.clone(),
            status: ["online", "away", "busy"][i % 3].into(),
            custom_status: (i % 4 == 0).then(|| format!("s{i}")),
            at: tick(),
        });
        for room in 0..(i % 3) {
            out.push(Record::Joined {
                room: format!("r{room}"),
                user_id: user.clone(),
                connection_id: conn.clone(),
                at: tick(),
            });
        }
        if i % 5 == 1 {
            out.push(Record::Left {
                room: "r0".into(),
                connection_id: conn.clone(),
                at: tick(),
            });
        }
        out.push(Record::Audit {
            kind: "connect",
            user_id: Some(user.clone()),
            connection_id: Some(conn.clone()),
            detail: serde_json::json!({ "i": i }),
            at: tick(),
        });
        // close one opened a while ago
        if i >= 7 && i % 2 == 1 {
            let j = i - 7;
            out.push(Record::ConnectionClosed {
                connection_id: format!("c{j}"),
                user_id: format!("u{}", j % 6),
                code: 1000 + j as u16,
                at: tick(),
            });
        }
    }
    out
}

type ConnectionRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    i64,
    Option<i32>,
);

/// Every row of the record tables, as text.
fn dump(path: &std::path::Path) -> Vec<String> {
    use crate::store::schema::{audit_events, connections, presence, room_members};
    use diesel::prelude::*;
    let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy()).expect("open");
    let mut rows: Vec<String> = Vec::new();
    let c: Vec<ConnectionRow> = connections::table
        .order(connections::connection_id)
        .select((
            connections::connection_id,
            connections::user_id,
            connections::remote_addr,
            connections::user_agent,
            connections::connected_at,
            connections::disconnected_at,
            connections::last_activity,
            connections::close_code,
        ))
        .load(&mut conn)
        .expect("connections");
    rows.extend(c.iter().map(|r| format!("{r:?}")));
    let m: Vec<(i64, String, String, String, i64, Option<i64>)> = room_members::table
        .order(room_members::id)
        .select((
            room_members::id,
            room_members::room,
            room_members::user_id,
            room_members::connection_id,
            room_members::joined_at,
            room_members::left_at,
        ))
        .load(&mut conn)
        .expect("members");
    rows.extend(m.iter().map(|r| format!("{r:?}")));
    let p: Vec<(String, String, Option<String>, i64)> = presence::table
        .order(presence::user_id)
        .select((
            presence::user_id,
            presence::status,
            presence::custom_status,
            presence::last_seen,
        ))
        .load(&mut conn)
        .expect("presence");
    rows.extend(p.iter().map(|r| format!("{r:?}")));
    let a: Vec<(i64, String, Option<String>, String, i64)> = audit_events::table
        .order(audit_events::id)
        .select((
            audit_events::id,
            audit_events::kind,
            audit_events::connection_id,
            audit_events::detail,
            audit_events::created_at,
        ))
        .load(&mut conn)
        .expect("audit");
    rows.extend(a.iter().map(|r| format!("{r:?}")));
    rows
}

/// The tables after writing `records` in batches of `size`.
async fn written_in_batches(records: &[Record], size: usize) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let url = DatabaseUrl::Sqlite(path.clone());
    migrate(&url).expect("migrate");
    let cfg = Settings::load_from(&[]).expect("settings").database;
    let db = Db::connect(url, &cfg).expect("pool");
    let dest = Dest {
        node_id: "n".into(),
    };
    for chunk in records.chunks(size) {
        let (d, batch) = (dest.clone(), Arc::new(chunk.to_vec()));
        db.timed(|db| d.write(db, batch)).await.expect("write");
    }
    dump(&path)
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_of_any_size_write_what_records_one_by_one_write() {
    let records = mixed();
    let one_by_one = written_in_batches(&records, 1).await;
    assert!(one_by_one.len() > 100, "{}", one_by_one.len());
    for size in [2, 7, 64, records.len()] {
        let batched = written_in_batches(&records, size).await;
        assert_eq!(batched, one_by_one, "batches of {size}");
    }
}
