//! The HTTP layer: thin handlers that check the request and ask an actor.
//! Every error answer has the same JSON shape, `{"code","message",...}`.

pub mod admin;
pub mod admin_ui;
pub mod announcements;
pub mod client_addr;
pub mod demo;
pub mod health;
pub mod messages;
pub mod openapi;
pub mod revocations;
pub mod rooms;
pub mod ws;

use std::sync::Arc;
use std::time::Instant;

use actix::dev::ToEnvelope;
use actix::{Actor, Handler, Message};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, Resource, ResponseError, Route};

use crate::actors::presence::PresenceTracker;
use crate::actors::redis_bridge::BridgeHealth;
use crate::actors::room_registry::RoomRegistry;
use crate::actors::session::SessionDeps;
use crate::config::Settings;
use crate::limits::ConnectionCounter;
use crate::mailbox::{Mailbox, Tracked};
use crate::protocol::{CommandError, ErrorCode};
use crate::store::revocations::RevocationStore;
use crate::store::Db;

/// What the handlers share; built once in `server::run`.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub node_id: String,
    pub started: Instant,
    pub presence: Mailbox<PresenceTracker>,
    pub counter: Arc<ConnectionCounter>,
    pub db: Db,
    /// Redis health, when this node is part of a cluster.
    pub redis: Option<Arc<BridgeHealth>>,
    /// How many refused handshakes a second are logged.
    pub refusal_log: crate::limits::LogBudget,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` is believed.
    pub trusted_proxies: client_addr::TrustedProxies,
    /// Where token revocations are stored (the set in force is the auth's).
    pub revocations: RevocationStore,
    pub sessions: Arc<SessionDeps>,
}

impl AppState {
    pub fn registry(&self) -> &Mailbox<RoomRegistry> {
        &self.sessions.registry
    }
}

/// Asks an actor through its bound mailbox: 503 with `Retry-After` when the
/// mailbox is full, 503 when the actor does not answer.
pub async fn ask<A, M>(mailbox: &Mailbox<A>, what: &str, msg: M) -> Result<M::Result, ApiError>
where
    A: Actor + Handler<Tracked<M>>,
    A::Context: ToEnvelope<A, Tracked<M>>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    let request = mailbox.ask(msg).map_err(|full| {
        let mut err = ApiError::from(CommandError::busy(what, full));
        err.body.retry_after_ms = Some(1000);
        err
    })?;
    request.await.map_err(|_| ApiError::unavailable(what))
}

/// An error answer: the contract's error body, with the HTTP status that
/// the error table (`crate::errors`) gives its code.
#[derive(Debug)]
pub struct ApiError {
    pub body: CommandError,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError::new(code, message).into()
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn unavailable(what: &str) -> Self {
        Self::new(ErrorCode::Unavailable, format!("{what} is not answering"))
    }
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.body.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<CommandError> for ApiError {
    fn from(body: CommandError) -> Self {
        ApiError { body }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.body.code, self.body.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }
    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status());
        if let Some(ms) = self.body.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                res.insert_header((header::RETRY_AFTER, v));
            }
        }
        res.json(&self.body)
    }
}

/// A JSON answer from a typed body. It goes through `serde_json::Value`,
/// so the keys come sorted, as in the answers the API has always given.
pub fn answer<T: serde::Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    match serde_json::to_value(body) {
        Ok(value) => HttpResponse::build(status).json(value),
        Err(e) => ApiError::new(ErrorCode::Internal, format!("answer: {e}")).error_response(),
    }
}

/// All routes. JSON, path and query extraction errors become `BAD_REQUEST`
/// bodies like every other error.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(256 * 1024)
            .error_handler(|err, _| {
                ApiError::bad_request(format!("invalid JSON body: {err}")).into()
            }),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::bad_request(format!("invalid query: {err}")).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::bad_request(format!("invalid path: {err}")).into()),
    )
    .service(only("/ws", web::get().to(ws::upgrade)))
    .configure(crate::graphql::routes)
    .configure(demo::routes)
    // HEAD as well as GET: load balancers and uptime checks probe with it.
    .service(methods(
        "/health",
        [
            web::get().to(health::health),
            web::head().to(health::health),
        ],
    ))
    .service(methods(
        "/ready",
        [web::get().to(health::ready), web::head().to(health::ready)],
    ))
    .service(methods(
        "/metrics",
        [
            web::get().to(health::metrics),
            web::head().to(health::metrics),
        ],
    ))
    .service(only("/admin/ui", web::get().to(admin_ui::page)))
    .service(only("/admin/ui/app.js", web::get().to(admin_ui::script)))
    .service(only(
        "/admin/openapi.json",
        web::get().to(openapi::document),
    ))
    .service(only("/admin/kick", web::post().to(admin::kick)))
    .service(only("/admin/revoke", web::post().to(revocations::revoke)))
    .service(only("/admin/revocations", web::get().to(revocations::list)))
    .service(only(
        "/admin/revocations/{id}",
        web::delete().to(revocations::lift),
    ))
    .service(only("/admin/notify", web::post().to(admin::notify)))
    .service(only("/admin/broadcast", web::post().to(admin::broadcast)))
    .service(methods(
        "/admin/announcements",
        [
            web::post().to(announcements::create),
            web::get().to(announcements::list),
        ],
    ))
    .service(only(
        "/admin/announcements/{id}",
        web::delete().to(announcements::end),
    ))
    .service(only("/admin/stats", web::get().to(admin::stats)))
    .service(only(
        "/admin/connections",
        web::get().to(admin::connections),
    ))
    .service(methods(
        "/admin/rooms",
        [web::get().to(admin::rooms), web::post().to(rooms::create)],
    ))
    .service(methods(
        "/admin/rooms/{room}",
        [
            web::get().to(rooms::get),
            web::patch().to(rooms::update),
            web::delete().to(rooms::delete),
        ],
    ))
    .service(only(
        "/admin/rooms/{room}/members",
        web::get().to(rooms::members),
    ))
    .service(only(
        "/admin/rooms/{room}/messages",
        web::post().to(messages::publish),
    ))
    .service(methods(
        "/admin/rooms/{room}/members/{user_id}",
        [
            web::put().to(rooms::put_member),
            web::delete().to(rooms::remove_member),
        ],
    ))
    .service(only("/admin/audit", web::get().to(admin::audit)))
    .service(only(
        "/admin/rooms/{room}/presence",
        web::get().to(admin::room_presence),
    ))
    .default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::new(ErrorCode::NotFound, "no such endpoint"))
    }));
}

/// A resource answering `route`'s method, and a JSON 405 for any other.
fn only(path: &str, route: Route) -> Resource {
    methods(path, [route])
}

/// A resource answering each route's method, and a JSON 405 for any other.
fn methods<const N: usize>(path: &str, routes: [Route; N]) -> Resource {
    routes
        .into_iter()
        .fold(web::resource(path), Resource::route)
        .default_service(web::to(method_not_allowed))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    ))
}
