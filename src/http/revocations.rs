//! Token revocation in the admin API: `POST /admin/revoke`,
//! `GET /admin/revocations`, `DELETE /admin/revocations/{id}`, and the
//! revocation `POST /admin/kick` makes with `"revoke": true`. Each is
//! stored first, then put in force on every node through the registry.
//! What is refused, and for how long, is `crate::revocation`'s.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::admin::{store_down, user_id, Admin, REGISTRY};
use super::{answer, ask, ApiError, AppState};
use crate::actors::messages::Revoke;
use crate::auth::now_secs;
use crate::protocol::ErrorCode;
use crate::revocation::{Revocation, RevocationChange};
use crate::store::ms_to_rfc3339;

/// Longest `banSeconds`: ten years.
const BAN_MAX_SECS: u64 = 10 * 365 * 24 * 3600;

/// What a revocation looks like in the admin API (times in RFC 3339).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Revocation)]
pub struct RevocationView {
    revocation_id: String,
    /// A user revocation or ban; null for a token's.
    user_id: Option<String>,
    /// A token's revocation; null for a user's.
    jti: Option<String>,
    /// Tokens of the user issued at or before this are refused.
    issued_before: Option<String>,
    /// Every token of the user is refused until then.
    ban_until: Option<String>,
    /// The entry holds until then.
    until: String,
    reason: String,
    created_at: String,
}

impl From<&Revocation> for RevocationView {
    fn from(r: &Revocation) -> Self {
        let time = |secs: u64| ms_to_rfc3339(crate::store::db_int(secs).saturating_mul(1000));
        RevocationView {
            revocation_id: r.id.clone(),
            user_id: r.user_id.clone(),
            jti: r.jti.clone(),
            issued_before: r.issued_before.map(time),
            ban_until: r.ban_until.map(time),
            until: time(r.until),
            reason: r.reason.clone(),
            created_at: time(r.created_at),
        }
    }
}

/// `POST /admin/revoke`'s answer: the revocation and how many nodes put it
/// in force in time.
#[derive(Serialize, ToSchema)]
pub struct RevokeAnswer {
    #[serde(flatten)]
    revocation: RevocationView,
    nodes: usize,
}

#[derive(Serialize, ToSchema)]
pub struct RevocationsAnswer {
    revocations: Vec<RevocationView>,
}

/// How many other nodes applied a change in time.
#[derive(Serialize, ToSchema)]
pub struct NodesAnswer {
    nodes: usize,
}

/// What a revocation asks for, before it is made.
#[derive(Debug, Default)]
pub struct Request {
    pub user_id: Option<String>,
    pub jti: Option<String>,
    pub until: Option<String>,
    pub ban_seconds: Option<u64>,
    pub reason: String,
}

impl Request {
    /// Checks the request and makes the revocation, issued at `now`; a
    /// user's covers every token issued up to `now`, and holds until
    /// `until` or `ttl_secs` from now (a ban's end, if later).
    pub fn build(self, now: u64, ttl_secs: u64) -> Result<Revocation, ApiError> {
        match (&self.user_id, &self.jti) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ApiError::bad_request(
                    "give exactly one of `userId` (all the user's tokens issued so far) and `jti` (one token)",
                ))
            }
            (Some(user), None) => user_id(user)?,
            (None, Some(jti)) => {
                if jti.is_empty() || jti.len() > 256 || jti.contains('\0') {
                    return Err(ApiError::bad_request(
                        "`jti` must be 1 to 256 bytes of text without NUL characters",
                    ));
                }
                if self.ban_seconds.is_some() {
                    return Err(ApiError::bad_request(
                        "`banSeconds` bans a user: give it with `userId`, not `jti`",
                    ));
                }
            }
        }
        if self.reason.contains('\0') || self.reason.len() > 1024 {
            return Err(ApiError::bad_request(
                "`reason` must be at most 1024 bytes without NUL characters",
            ));
        }
        let ban_until = match self.ban_seconds {
            Some(0) | None => None,
            Some(s) if s <= BAN_MAX_SECS => Some(now + s),
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "`banSeconds` must be at most {BAN_MAX_SECS} (ten years)"
                )))
            }
        };
        let until = match &self.until {
            None => now + ttl_secs,
            Some(text) => {
                let t = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
                    ApiError::bad_request(format!(
                        "`until` must be an RFC 3339 time such as 2030-01-01T00:00:00Z: {e}"
                    ))
                })?;
                let secs = u64::try_from(t.timestamp()).unwrap_or(0);
                if secs <= now {
                    return Err(ApiError::bad_request("`until` must be in the future"));
                }
                secs
            }
        };
        let is_user = self.user_id.is_some();
        Ok(Revocation {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: self.user_id,
            jti: self.jti,
            issued_before: is_user.then_some(now),
            ban_until,
            until: until.max(ban_until.unwrap_or(0)),
            reason: self.reason,
            created_at: now,
        })
    }
}

/// Stores a revocation and records it in the audit log; it is not yet in
/// force (the caller hands it to the registry, alone or with a kick).
pub async fn store(state: &AppState, r: &Revocation) -> Result<(), ApiError> {
    state.revocations.save(r).await.map_err(store_down)?;
    log::info!(
        "revocation {} made: user={:?} jti={:?} until={}",
        r.id,
        r.user_id,
        r.jti,
        r.until
    );
    let detail = json!({ "made": RevocationView::from(r) });
    let user = r.user_id.as_deref();
    state.sessions.records.audit("revoke", user, None, detail);
    Ok(())
}

/// Exactly one of `userId` and `jti`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeBody {
    /// Every token of the user issued so far.
    #[serde(default)]
    user_id: Option<String>,
    /// The one token with this `jti` claim (1 to 256 bytes).
    #[serde(default)]
    jti: Option<String>,
    /// RFC 3339, in the future; default `auth.revocation_ttl_secs` from now.
    #[serde(default)]
    until: Option<String>,
    /// Also ban the user this long (at most ten years).
    #[serde(default)]
    ban_seconds: Option<u64>,
    /// At most 1024 bytes.
    #[serde(default)]
    reason: Option<String>,
}

/// Stores a revocation and puts it in force on every node.
#[utoipa::path(post, path = "/admin/revoke", tag = "revocations", request_body = RevokeBody,
    responses((status = 201, body = RevokeAnswer)))]
pub async fn revoke(
    _: Admin,
    state: web::Data<AppState>,
    body: web::Json<RevokeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = Request {
        user_id: body.user_id,
        jti: body.jti,
        until: body.until,
        ban_seconds: body.ban_seconds,
        reason: body.reason.unwrap_or_default(),
    };
    let ttl = state.settings.auth.revocation_ttl.as_secs();
    let r = request.build(now_secs(), ttl)?;
    store(&state, &r).await?;
    let change = RevocationChange::Add(r.clone());
    let nodes = ask(state.registry(), REGISTRY, Revoke(change)).await?;
    let made = RevokeAnswer {
        revocation: RevocationView::from(&r),
        nodes,
    };
    Ok(answer(StatusCode::CREATED, &made))
}

/// The revocations in force.
#[utoipa::path(get, path = "/admin/revocations", tag = "revocations",
    responses((status = 200, body = RevocationsAnswer)))]
pub async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stored = state
        .revocations
        .active(now_secs())
        .await
        .map_err(store_down)?;
    let revocations = stored.iter().map(RevocationView::from).collect();
    Ok(answer(StatusCode::OK, &RevocationsAnswer { revocations }))
}

/// Lifts a revocation on every node.
#[utoipa::path(delete, path = "/admin/revocations/{id}", tag = "revocations",
    params(("id" = String, Path, description = "the revocationId")),
    responses((status = 200, body = NodesAnswer)))]
pub async fn lift(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !state.revocations.delete(&id).await.map_err(store_down)? {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no revocation {id:?} (it may have run out)"),
        ));
    }
    log::info!("revocation {id} lifted");
    let detail = json!({ "lifted": id });
    state.sessions.records.audit("revoke", None, None, detail);
    let nodes = ask(
        state.registry(),
        REGISTRY,
        Revoke(RevocationChange::Lift(id)),
    )
    .await?;
    Ok(answer(StatusCode::OK, &NodesAnswer { nodes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Request {
        Request {
            user_id: Some(name.into()),
            ..Request::default()
        }
    }

    #[test]
    fn a_user_revocation_covers_tokens_issued_so_far_for_the_ttl() {
        let r = user("alice").build(1_000, 50).unwrap();
        assert_eq!(r.issued_before, Some(1_000));
        assert_eq!((r.until, r.ban_until), (1_050, None));
    }

    #[test]
    fn a_ban_longer_than_the_ttl_holds_the_entry_as_long() {
        let r = Request {
            ban_seconds: Some(500),
            ..user("alice")
        };
        let r = r.build(1_000, 50).unwrap();
        assert_eq!((r.ban_until, r.until), (Some(1_500), 1_500));
    }

    #[test]
    fn until_is_taken_when_given_and_must_be_ahead() {
        let r = Request {
            until: Some("2030-01-01T00:00:00Z".into()),
            ..user("alice")
        };
        assert_eq!(r.build(1_000, 50).unwrap().until, 1_893_456_000);
        let past = Request {
            until: Some("1970-01-01T00:10:00Z".into()),
            ..user("alice")
        };
        assert!(past.build(1_000, 50).is_err());
        let garbage = Request {
            until: Some("tomorrow".into()),
            ..user("alice")
        };
        assert!(garbage.build(1_000, 50).is_err());
    }

    #[test]
    fn exactly_one_target_and_no_ban_of_a_token() {
        assert!(Request::default().build(1, 1).is_err());
        let both = Request {
            jti: Some("t".into()),
            ..user("alice")
        };
        assert!(both.build(1, 1).is_err());
        let jti = Request {
            jti: Some("t".into()),
            ..Request::default()
        };
        let r = jti.build(1_000, 50).unwrap();
        assert_eq!((r.issued_before, r.jti.as_deref()), (None, Some("t")));
        let banned_jti = Request {
            jti: Some("t".into()),
            ban_seconds: Some(5),
            ..Request::default()
        };
        assert!(banned_jti.build(1, 1).is_err());
        assert!(user("bad\u{200b}id").build(1, 1).is_err());
    }
}
