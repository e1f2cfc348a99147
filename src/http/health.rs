//! `/health`, `/ready` and `/metrics`: no authentication.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{ask, ApiError, AppState};
use crate::actors::messages::Stats;
use crate::metrics::Gauges;

/// Longest `/metrics` waits for the registry's counts.
const SCRAPE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Liveness: the process answers HTTP.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "nodeId": state.node_id,
        "uptimeSecs": state.started.elapsed().as_secs(),
    }))
}

/// Readiness: the actors and the database answer.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let registry = ask(state.registry(), "the room registry", Stats)
        .await
        .is_ok();
    let database = state.db.ping().await;
    let redis = state.redis.as_ref().map(|h| h.up());
    let up = |ok: bool| if ok { "ok" } else { "down" };
    let ready = registry && database.is_ok() && redis != Some(false);
    let mut body = json!({
        "status": if ready { "ok" } else { "unavailable" },
        "checks": {
            "roomRegistry": up(registry),
            "database": up(database.is_ok()),
        },
    });
    if let Some(redis) = redis {
        body["checks"]["redis"] = json!(up(redis));
    }
    if let Err(e) = database {
        body["errors"] = json!({ "database": e.to_string() });
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Waits its turn in a full registry mailbox: the figures are most
    // wanted when the server is busy.
    let stats = tokio::time::timeout(SCRAPE_WAIT, state.registry().ask_in_turn(Stats))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| ApiError::unavailable("the room registry"))?;
    let gauges = Gauges {
        connections: stats.connections as u64,
        users: stats.users as u64,
        rooms: stats.rooms as u64,
    };
    let text = state.sessions.metrics.render(&state.node_id, &gauges);
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
