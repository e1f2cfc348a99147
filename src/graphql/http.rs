//! `/graphql` over HTTP: `POST` (queries and mutations), `GET` (queries
//! only, from the query string), the WebSocket upgrade (subscriptions
//! too), and the GraphiQL page (a `GET` with no query, development mode
//! only).

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::http::{
    GraphiQLSource, WebSocketProtocols as Protocols, ALL_WEBSOCKET_PROTOCOLS,
};
use async_graphql::parser::types::OperationType;
use chrono::Utc;
use serde::Deserialize;

use super::socket::{GqlSocket, SocketDeps};
use super::{schema, Viewer};
use crate::actors::conn::ConnSocket;
use crate::actors::messages::ConnectionInfo;
use crate::auth::{AuthError, Identity};
use crate::errors::Refused;
use crate::http::client_addr::client_addr;
use crate::http::{ApiError, AppState};
use crate::protocol::{timestamp, ErrorCode};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/graphql")
            .route(web::post().to(post))
            .route(web::get().to(get))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    "method not allowed on this endpoint",
                ))
            })),
    );
}

/// Development mode: no JWT key (as for the demo page).
fn dev_mode(state: &AppState) -> bool {
    state.sessions.auth.is_insecure()
}

/// The connection row an HTTP request or a socket starts from.
fn connection_info(req: &HttpRequest, state: &AppState, user: Arc<str>) -> ConnectionInfo {
    let shown =
        client_addr(req.peer_addr(), req.headers(), &state.trusted_proxies).map(|c| c.shown);
    ConnectionInfo {
        connection_id: uuid::Uuid::new_v4().to_string(),
        node_id: state.node_id.as_str().into(),
        user_id: user,
        remote_addr: shown,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
        connected_at: timestamp(Utc::now()),
        rooms: Vec::new(),
    }
}

/// `Authorization: Bearer`, checked as `/ws` checks it (revocation too).
fn identify(req: &HttpRequest, state: &AppState) -> Result<Identity, ApiError> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty());
    let refused = |reason: Refused, message: String| {
        state.sessions.metrics.handshakes_refused.count(reason);
        ApiError::new(ErrorCode::Unauthorized, message)
    };
    match bearer {
        Some(token) => match state.sessions.auth.verify(token) {
            Ok(claims) => Ok(Identity::from_claims(claims)),
            Err(e @ AuthError::Revoked(_)) => Err(refused(Refused::Revoked, e.to_string())),
            Err(e) => Err(refused(Refused::BadToken, e.to_string())),
        },
        None if state.settings.server.anonymous => {
            Ok(Identity::anonymous(&uuid::Uuid::new_v4().to_string()))
        }
        None => Err(refused(Refused::NoToken, AuthError::Missing.to_string())),
    }
}

async fn run(
    req: &HttpRequest,
    state: &AppState,
    request: async_graphql::Request,
) -> Result<HttpResponse, ApiError> {
    let identity = Arc::new(identify(req, state)?);
    let info = connection_info(req, state, identity.user_id.clone());
    let viewer = Arc::new(Viewer::request(identity, state.sessions.clone(), info));
    let request = request.data(viewer.clone());
    let response = schema(dev_mode(state)).execute(request).await;
    viewer.finish().await;
    Ok(HttpResponse::Ok().json(response))
}

async fn post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<async_graphql::Request>,
) -> Result<HttpResponse, ApiError> {
    run(&req, &state, body.into_inner()).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetQuery {
    query: Option<String>,
    operation_name: Option<String>,
    /// JSON, as the GraphQL-over-HTTP convention has it.
    variables: Option<String>,
}

async fn get(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<GetQuery>,
) -> Result<HttpResponse, ApiError> {
    if actix_web_actors::ws::handshake(&req).is_ok() {
        return upgrade(req, stream, state).await;
    }
    let GetQuery {
        query,
        operation_name,
        variables,
    } = query.into_inner();
    let Some(query) = query else {
        if !dev_mode(&state) {
            return Err(ApiError::bad_request(
                "GET /graphql needs a `query` parameter",
            ));
        }
        let page = GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .finish();
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(page));
    };
    // GET is for reading: a mutation (or subscription) must be POSTed.
    let doc = async_graphql::parser::parse_query(&query)
        .map_err(|e| ApiError::bad_request(format!("invalid GraphQL query: {e}")))?;
    let chosen: Vec<_> = doc
        .operations
        .iter()
        .filter(|(name, _)| match (&operation_name, name) {
            (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
            _ => true,
        })
        .collect();
    if chosen
        .iter()
        .any(|(_, op)| op.node.ty != OperationType::Query)
    {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "GET /graphql runs queries only: POST mutations, subscribe over the WebSocket",
        ));
    }
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = variables {
        let vars: serde_json::Value = serde_json::from_str(&vars)
            .map_err(|e| ApiError::bad_request(format!("`variables` is not JSON: {e}")))?;
        request = request.variables(async_graphql::Variables::from_json(vars));
    }
    run(&req, &state, request).await
}

/// The WebSocket: the protocol the client offers, then a `GqlSocket`.
/// The user is known at `connection_init`, not here.
async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let protocol = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| p.trim().parse::<Protocols>().ok())
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "offer the graphql-transport-ws (or graphql-ws) WebSocket subprotocol",
            )
        })?;
    let env = SocketDeps {
        deps: state.sessions.clone(),
        counter: state.counter.clone(),
        anonymous: state.settings.server.anonymous,
        schema: schema(dev_mode(&state)).clone(),
        info: connection_info(&req, &state, "".into()),
        socket: req.conn_data::<ConnSocket>().copied(),
    };
    actix_web_actors::ws::WsResponseBuilder::new(GqlSocket::new(env, protocol), &req, stream)
        .protocols(&ALL_WEBSOCKET_PROTOCOLS)
        .frame_size(state.settings.limits.max_frame_bytes)
        .start()
        .map_err(|e| ApiError::bad_request(format!("WebSocket handshake failed: {e}")))
}
