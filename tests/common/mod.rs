//! Test harness: starts the real `realtime-server` binary on a free port
//! and talks to it with a real WebSocket client and a real HTTP client.
//!
//! Layout:
//! - `server.rs`: [`Server`], one server process, its tokens and HTTP calls;
//! - `client.rs`: [`Client`], one WebSocket connection;
//! - `services.rs`: the PostgreSQL and Redis the tests use, private ones
//!   started from the installed binaries when none answers at the usual
//!   addresses;
//! - `db.rs`: [`TestDb`], a fresh database per test;
//! - `flood.rs`: a publisher paced by a reader, for slow-consumer tests;
//! - `proxy.rs`: [`Proxy`], a TCP proxy a test can cut or hold;
//! - `cluster.rs`: nodes sharing Redis, and a private Redis to stop;
//! - `rooms.rs`: helpers of the managed-room tests.
//!
//! Time: every setting a test makes short on purpose (typing timeout,
//! heartbeat, token life, database timeout) goes through [`scaled`], so
//! `REALTIME_TEST_TIME_SCALE=3 cargo test` gives a very slow machine three
//! times the room. The defaults pass on a busy two-core machine with a
//! debug build.

// Each test file uses part of the harness.
#![allow(dead_code, unused_imports)]

/// Runs a scenario once per backend, as two tests (a module per scenario
/// with `sqlite` and `postgres` in it); the test files that use it say
/// `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[actix_rt::test]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await;
            }
            #[actix_rt::test]
            async fn postgres() {
                super::$name(Backend::Postgres).await;
            }
        }
    )*};
}

mod client;
mod cluster;
mod db;
mod flood;
mod nginx;
mod node;
mod proxy;
mod server;
mod services;

pub mod raw;
pub mod rooms;

use std::time::Duration;

pub use client::{Client, Closed};
pub use cluster::{redis_prefix, start_node, two_nodes, PrivateRedis};
pub use db::{Backend, TestDb};
pub use flood::{assert_ended, paced_flood, MAX_UNCONFIRMED};
pub use nginx::Nginx;
pub use node::{js_client_dir, npm};
pub use proxy::Proxy;
pub use server::{claims, run_to_exit, series, user_ids, Server};
pub use services::{pg_addr, redis_url};

pub const SECRET: &str = "integration-test-secret-at-least-32-bytes";
pub const ADMIN_KEY: &str = "integration-admin-key";
/// How long to wait for a frame that must come. Long: a test that works
/// never waits for all of it.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long to watch for a frame that must not come.
pub const QUIET: Duration = Duration::from_millis(300);

/// `REALTIME_TEST_TIME_SCALE` (default 1): how much slower than usual
/// this machine may be.
pub fn time_scale() -> u64 {
    std::env::var("REALTIME_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &u64| n >= 1)
        .unwrap_or(1)
}

/// `ms` milliseconds times the time scale: for the short settings a test
/// configures on purpose, and the margins around them.
pub fn scaled(ms: u64) -> Duration {
    Duration::from_millis(ms * time_scale())
}

/// [`scaled`] in milliseconds, for TOML and environment settings.
pub fn scaled_ms(ms: u64) -> u64 {
    ms * time_scale()
}
