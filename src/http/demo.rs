//! `GET /demo`: a small chat page built on the JavaScript client
//! (`clients/js`), and `GET /demo/token`, which hands out development
//! tokens. Both exist only in the insecure development mode (no JWT key
//! configured); otherwise they answer 404 like any unknown path. The page
//! and the client's ESM files are built into the binary.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::{now_secs, Audience, Claims};
use crate::protocol::ErrorCode;

/// The page, and the client's files under `/demo/client/`.
const PAGE: &str = include_str!("demo/index.html");
const CLIENT: [(&str, &str); 7] = [
    ("index.js", include_str!("../../clients/js/src/index.js")),
    ("client.js", include_str!("../../clients/js/src/client.js")),
    ("room.js", include_str!("../../clients/js/src/room.js")),
    (
        "managed.js",
        include_str!("../../clients/js/src/managed.js"),
    ),
    (
        "emitter.js",
        include_str!("../../clients/js/src/emitter.js"),
    ),
    ("errors.js", include_str!("../../clients/js/src/errors.js")),
    (
        "backoff.js",
        include_str!("../../clients/js/src/backoff.js"),
    ),
];

/// How long a development token lives: long enough for a demo, short
/// enough that the page's token refresh is exercised in a long session.
const TOKEN_SECS: u64 = 3600;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/demo", web::get().to(page))
        .route("/demo/token", web::get().to(token))
        .route("/demo/client/{file}", web::get().to(client_file));
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// 404 unless the server runs in the insecure development mode.
fn dev_only(state: &AppState) -> Result<(), ApiError> {
    if state.sessions.auth.is_insecure() {
        Ok(())
    } else {
        Err(not_found())
    }
}

async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    dev_only(&state)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PAGE))
}

async fn client_file(
    state: web::Data<AppState>,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    dev_only(&state)?;
    let (_, body) = CLIENT
        .iter()
        .find(|(name, _)| *name == file.as_str())
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(*body))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    user: String,
}

/// A token for any user id, allowed in every room: development only.
async fn token(
    state: web::Data<AppState>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, ApiError> {
    dev_only(&state)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-:.@".contains(c);
    if query.user.is_empty() || query.user.len() > 123 || !query.user.chars().all(allowed) {
        return Err(ApiError::bad_request(
            "`user` must be 1 to 123 characters from A-Z a-z 0-9 _ - : . @",
        ));
    }
    let auth = &state.settings.auth;
    let now = now_secs();
    let claims = Claims {
        sub: query.user.clone(),
        exp: now + TOKEN_SECS,
        iat: Some(now),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        name: Some(query.user.clone()),
        rooms: Some(vec!["*".into()]),
        role: None,
        iss: (!auth.issuer.is_empty()).then(|| auth.issuer.clone()),
        roles: None,
        aud: (!auth.audience.is_empty()).then(|| Audience::One(auth.audience.clone())),
    };
    let token = state
        .sessions
        .auth
        .mint(&claims)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "token": token, "expiresIn": TOKEN_SECS })))
}
