//! Start-up: builds every actor once, hands each its peers' addresses, and
//! runs the HTTP server until a signal asks it to stop; [`shutdown`] holds
//! the ordered way down.

mod shutdown;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};

use crate::actors::presence::PresenceTracker;
use crate::actors::redis_bridge::{BridgeConfig, BridgeHealth, BridgeLink, Inbox, RedisBridge};
use crate::actors::room_registry::{RegistryConfig, RegistryDeps, RoomRegistry};
use crate::actors::session::{SessionConfig, SessionDeps, REGISTRY_TIMEOUT};
use crate::auth::{now_secs, Auth};
use crate::broker::memory::MemoryPresence;
use crate::broker::MessageLog;
use crate::cluster::{Cluster, SingleNode};
use crate::config::Settings;
use crate::http::client_addr::TrustedProxies;
use crate::http::{self, AppState};
use crate::limits::{ConnectionCounter, RateLimiters};
use crate::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::protocol::DecodeLimits;
use crate::revocation::Revocations;
use crate::rooms::RoomService;
use crate::store::announcements::Announcements;
use crate::store::messages::DbLog;
use crate::store::notifications::Notifications;
use crate::store::records::Records;
use crate::store::revocations::RevocationStore;
use crate::store::rooms::RoomStore;
use crate::store::{redact_url, DatabaseUrl, Db};

pub async fn run(settings: Settings, auth: Auth) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let node_id = if settings.server.node_id.is_empty() {
        format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
    } else {
        settings.server.node_id.clone()
    };
    let auth = Arc::new(auth);
    if auth.is_insecure() {
        log::warn!("==================================================================");
        log::warn!("INSECURE DEVELOPMENT MODE: no JWT key is configured, so tokens are");
        log::warn!("signed with a PUBLICLY KNOWN secret and anyone can mint one.");
        log::warn!("Set REALTIME_JWT_SECRET or REALTIME_JWT_PUBLIC_KEY before real use;");
        log::warn!("server.environment = \"production\" refuses to start like this.");
        log::warn!("==================================================================");
    }
    let metrics = Arc::new(Metrics::default());

    let db_cfg = &settings.database;
    let url = DatabaseUrl::parse(&db_cfg.url, &db_cfg.data_dir).map_err(anyhow::Error::msg)?;
    log::info!("database: {}", url.describe());
    let db = Db::connect(url, db_cfg).map_err(anyhow::Error::msg)?;
    let message_log = DbLog::start(db.clone(), db_cfg, metrics.clone());
    let records = Records::start(
        db.clone(),
        db_cfg,
        &settings.audit,
        node_id.clone(),
        metrics.clone(),
    );

    // The registry's mailbox first: the bridge is handed its way in
    // before either actor starts, so no event from another node is dropped
    // for want of an address.
    let (registry, unstarted_registry) =
        Mailbox::<RoomRegistry>::reserve(settings.mailbox.registry);
    metrics.watch_mailbox("room_registry", registry.bound());
    let bridge_health = Arc::new(BridgeHealth::default());
    let bridge = if settings.redis.url.is_empty() {
        None
    } else {
        if matches!(db.url(), DatabaseUrl::Sqlite(_)) {
            anyhow::bail!(
                "REDIS_URL is set but the database is SQLite: nodes that share a Redis must also share \
                 one PostgreSQL database (that is where seq comes from); set DATABASE_URL=postgres://…"
            );
        }
        let cfg = BridgeConfig::from_settings(&settings.redis, &node_id, settings.mailbox.redis);
        log::info!(
            "redis: {} with prefix {:?}",
            redact_url(&settings.redis.url),
            cfg.prefix
        );
        let inbox = Inbox {
            events: registry.peer(),
            gone: registry.peer(),
        };
        let bridge = RedisBridge::new(cfg, inbox, bridge_health.clone(), metrics.clone())
            .map_err(anyhow::Error::msg)?;
        let bridge = Mailbox::start(settings.mailbox.redis, move |_| bridge);
        metrics.watch_mailbox("redis_bridge", bridge.bound());
        Some(bridge)
    };
    let cluster: Arc<dyn Cluster> = match &bridge {
        Some(bridge) => Arc::new(BridgeLink {
            bridge: bridge.clone(),
            metrics: metrics.clone(),
        }),
        None => Arc::new(SingleNode),
    };

    // Revoked tokens are refused from the first connection on: loaded
    // before the server listens, then reloaded now and then.
    let revocation_store = RevocationStore::new(db.clone());
    let revocations = auth.revocations().clone();
    if let Err(e) = reload_revocations(&revocation_store, &revocations).await {
        log::error!(
            "token revocations not loaded: {e}; retrying every {:?}",
            settings.auth.revocation_refresh
        );
    }

    let typing_timeout = settings.typing.timeout;
    let presence = Mailbox::start(settings.mailbox.presence, move |_| {
        PresenceTracker::new(Box::new(MemoryPresence::default()), typing_timeout)
    });
    metrics.watch_mailbox("presence_tracker", presence.bound());
    let rooms = RoomService::new(RoomStore::new(db.clone()));
    let deps = RegistryDeps {
        log: message_log.clone() as Arc<dyn MessageLog>,
        presence: presence.clone(),
        cluster,
        metrics: metrics.clone(),
        records: records.clone(),
        revocations: revocations.clone(),
        rooms: rooms.clone(),
    };
    let cfg = RegistryConfig::from_settings(&settings, &node_id);
    unstarted_registry.start(move |_| RoomRegistry::new(cfg, deps));
    let limiters = Arc::new(RateLimiters::new(&settings.rate_limits));
    let sessions = Arc::new(SessionDeps {
        registry: registry.clone(),
        auth,
        limiters: limiters.clone(),
        metrics,
        notifications: Notifications::new(db.clone()),
        announcements: Announcements::new(db.clone()),
        records: records.clone(),
        rooms,
        cfg: SessionConfig {
            heartbeat_interval: settings.heartbeat.interval,
            heartbeat_timeout: settings.heartbeat.timeout,
            mailbox: settings.mailbox.session,
            max_frame_bytes: settings.limits.max_frame_bytes,
            max_fragments: settings.limits.max_fragments,
            registry_timeout: REGISTRY_TIMEOUT.max(db_cfg.timeout + REGISTRY_TIMEOUT / 2),
            decode: DecodeLimits {
                max_message_chars: settings.limits.max_message_chars,
                max_metadata_bytes: settings.limits.max_metadata_bytes,
            },
            flood_close_after: settings.rate_limits.flood_close_after.max(1),
            notifications_on_connect: db_cfg.notifications_on_connect,
        },
    });
    let state = web::Data::new(AppState {
        settings: settings.clone(),
        node_id: node_id.clone(),
        started: Instant::now(),
        presence,
        counter: ConnectionCounter::new(&settings.limits),
        db,
        redis: bridge.as_ref().map(|_| bridge_health.clone()),
        revocations: revocation_store.clone(),
        refusal_log: crate::limits::LogBudget::new(10),
        trusted_proxies: TrustedProxies::parse(&settings.server.trusted_proxies)
            .map_err(anyhow::Error::msg)?,
        sessions,
    });

    let mut server =
        HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
            .on_connect(http::ws::remember_socket)
            // Events are small and must go out at once: no Nagle delay.
            .tcp_nodelay(true)
            // A request (the upgrade included) must arrive whole within this;
            // a trickling handshake is cut off.
            .client_request_timeout(settings.server.client_request_timeout)
            .client_disconnect_timeout(Duration::from_millis(1000))
            .shutdown_timeout(settings.server.shutdown_timeout.as_secs())
            .disable_signals();
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let server = server.bind((settings.server.host.as_str(), settings.server.port))?;
    for addr in server.addrs() {
        log::info!("node {node_id} listening on http://{addr} (WebSocket: ws://{addr}/ws)");
        // Printed for scripts and tests that start the server on port 0.
        println!("realtime-server listening on {addr}");
    }
    let server = server.run();
    let handle = server.handle();

    if !settings.server.memory_trim.is_zero() {
        let every = settings.server.memory_trim;
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(every);
            loop {
                tick.tick().await;
                crate::memory::return_free_memory();
            }
        });
    }

    // Forget idle rate-limit buckets now and then.
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiters.shrink();
        }
    });

    let every = settings.auth.revocation_refresh.max(Duration::from_secs(1));
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = reload_revocations(&revocation_store, &revocations).await {
                log::warn!("token revocations not reloaded: {e}");
            }
        }
    });

    actix_web::rt::spawn(shutdown::on_signal(registry.clone(), handle));
    server.await?;
    shutdown::drain(
        settings.server.shutdown_timeout,
        message_log,
        records,
        bridge,
    )
    .await;
    Ok(())
}

/// Replaces the revocations in force with the database's (which prunes the
/// ones run out, there and here).
async fn reload_revocations(
    store: &RevocationStore,
    set: &Revocations,
) -> Result<(), crate::store::StoreError> {
    let read_at = now_secs();
    let stored = store.active(read_at).await?;
    set.reload(stored, read_at, now_secs());
    Ok(())
}
