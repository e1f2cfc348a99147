//! The way down, in order: a signal closes every connection with 1001 and
//! stops the listener; then what is queued for the database is written, and
//! the node leaves the cluster, each within the shutdown timeout.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;

use crate::actors::messages::{CloseAll, Depart};
use crate::actors::redis_bridge::RedisBridge;
use crate::actors::room_registry::RoomRegistry;
use crate::mailbox::Mailbox;
use crate::store::messages::DbLog;
use crate::store::records::Records;

/// Waits for SIGTERM or SIGINT, asks every session to close with 1001, and
/// stops the HTTP server (which waits for the connections to end).
pub async fn on_signal(registry: Mailbox<RoomRegistry>, handle: ServerHandle) {
    let signal = wait_for_signal().await;
    log::info!("{signal}: closing connections with 1001 and stopping");
    if let Ok(n) = registry.ask_in_turn(CloseAll).await {
        log::info!("asked {n} connections to close");
    }
    // A client that reconnects at once (as the JavaScript client does after
    // 1001) can be upgraded after that CloseAll, before the listener stops;
    // such a connection would hold the stop for the whole shutdown timeout.
    // Close the late ones too, until the server has stopped.
    let sweeper = actix_web::rt::spawn(async move {
        loop {
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            let _ = registry.ask_in_turn(CloseAll).await;
        }
    });
    // Let the close frames go out before the listener stops.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    handle.stop(true).await;
    sweeper.abort();
}

/// After the server has stopped: writes the pending messages and background
/// records, then tells the other nodes this one is gone, so they drop its
/// presence now rather than after the TTL.
pub async fn drain(
    timeout: Duration,
    message_log: Arc<DbLog>,
    records: Arc<Records>,
    bridge: Option<Mailbox<RedisBridge>>,
) {
    let limit = timeout.max(Duration::from_secs(1));
    if tokio::time::timeout(limit, message_log.flush())
        .await
        .is_err()
    {
        log::warn!("pending messages not all written within {limit:?}");
    }
    if !records.flush(limit).await {
        log::warn!("background records not all written within {limit:?}");
    }
    if let Some(bridge) = &bridge {
        let _ = tokio::time::timeout(limit, bridge.ask_in_turn(Depart)).await;
    }
    log::info!("stopped");
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
