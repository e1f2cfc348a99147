//! `POST /admin/announcements`, `GET /admin/announcements`,
//! `DELETE /admin/announcements/{id}`: stored first, then delivered at once
//! on every node to the connections whose token's `roles` meet the
//! targets (new connections get the active ones after `connected`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::admin::{store_down, Admin, REGISTRY};
use super::{answer, ask, ApiError, AppState};
use crate::actors::messages::{Announce, EndAnnouncement};
use crate::protocol::{Announcement, AnnouncementType, ErrorCode, MAX_NAME_LEN};
use crate::store::announcements::StoredAnnouncement;
use crate::store::{ms_to_rfc3339, now_ms};

/// Longest `title`, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest `message`, in characters.
pub const MAX_MESSAGE: usize = 4000;
/// Most entries of `targetRoles`; each is 1 to 64 bytes.
pub const MAX_TARGET_ROLES: usize = 32;
pub const MAX_ROLE_LEN: usize = 64;
/// Most announcements `GET /admin/announcements` lists (the newest).
pub const LIST_MAX: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAnnouncement {
    /// 1 to 200 characters.
    title: String,
    /// 1 to 4,000 characters.
    message: String,
    #[serde(rename = "type")]
    kind: AnnouncementType,
    /// Only connections whose token's `roles` claim has one of these (at
    /// most 32, each 1 to 64 bytes); absent or empty: everyone.
    #[serde(default)]
    target_roles: Option<Vec<String>>,
    /// RFC 3339.
    #[serde(default)]
    starts_at: Option<String>,
    /// RFC 3339; in the future, after `startsAt`.
    #[serde(default)]
    ends_at: Option<String>,
}

fn text(value: &str, field: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if value.contains('\0') {
        return Err(format!("`{field}` must not contain NUL characters"));
    }
    if value.chars().count() > max {
        return Err(format!("`{field}` is limited to {max} characters"));
    }
    Ok(())
}

fn time(value: Option<&str>, field: &str) -> Result<Option<i64>, String> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("`{field}` is not an RFC 3339 time: {e}"))
        })
        .transpose()
}

impl NewAnnouncement {
    /// Checks the request into what is stored, created at `now` (ms).
    pub fn build(self, id: String, now: i64) -> Result<StoredAnnouncement, String> {
        text(&self.title, "title", MAX_TITLE)?;
        text(&self.message, "message", MAX_MESSAGE)?;
        let roles = self.target_roles.unwrap_or_default();
        if roles.len() > MAX_TARGET_ROLES {
            return Err(format!(
                "`targetRoles` lists at most {MAX_TARGET_ROLES} roles"
            ));
        }
        if roles
            .iter()
            .any(|r| r.is_empty() || r.len() > MAX_ROLE_LEN || r.contains('\0'))
        {
            return Err(format!(
                "each of `targetRoles` must be 1 to {MAX_ROLE_LEN} bytes, without NUL characters"
            ));
        }
        let starts = time(self.starts_at.as_deref(), "startsAt")?;
        let ends = time(self.ends_at.as_deref(), "endsAt")?;
        if let Some(end) = ends {
            if end <= now {
                return Err("`endsAt` is in the past".into());
            }
            if starts.is_some_and(|s| s >= end) {
                return Err("`endsAt` must be after `startsAt`".into());
            }
        }
        Ok(StoredAnnouncement {
            announcement: Announcement {
                announcement_id: id,
                title: self.title,
                message: self.message,
                kind: self.kind,
                starts_at: starts.map(ms_to_rfc3339),
                ends_at: ends.map(ms_to_rfc3339),
            },
            target_roles: roles,
            starts_ms: starts,
            ends_ms: ends,
            created_ms: now,
            ended_ms: None,
        })
    }
}

/// `POST /admin/announcements`' answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnnouncementCreated {
    announcement_id: String,
    /// Connections it was sent to at once, on every node (0 for one that
    /// starts later).
    delivered: usize,
}

/// An announcement as the admin API lists it: what connections receive,
/// and its targets and state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedAnnouncement {
    #[serde(flatten)]
    announcement: Announcement,
    target_roles: Vec<String>,
    created_at: String,
    /// When `DELETE` ended it; null otherwise.
    ended_at: Option<String>,
    /// Started, not past `endsAt`, not ended.
    active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnnouncementList {
    /// The newest 100, newest first.
    announcements: Vec<ListedAnnouncement>,
}

fn listed(a: &StoredAnnouncement, now: i64) -> ListedAnnouncement {
    ListedAnnouncement {
        announcement: a.announcement.clone(),
        target_roles: a.target_roles.clone(),
        created_at: ms_to_rfc3339(a.created_ms),
        ended_at: a.ended_ms.map(ms_to_rfc3339),
        active: a.active_at(now),
    }
}

/// Stores an announcement and sends it to the connections it targets.
#[utoipa::path(post, path = "/admin/announcements", tag = "announcements",
    request_body = NewAnnouncement,
    responses((status = 201, body = AnnouncementCreated)))]
pub async fn create(
    _: Admin,
    state: web::Data<AppState>,
    body: web::Json<NewAnnouncement>,
) -> Result<HttpResponse, ApiError> {
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let stored = body
        .into_inner()
        .build(id.clone(), now)
        .map_err(ApiError::bad_request)?;
    // Stored first: what is acknowledged reaches later connections too.
    state
        .sessions
        .announcements
        .save(&stored)
        .await
        .map_err(store_down)?;
    // One that starts later is sent by every node when it starts.
    let msg = Announce {
        announcement: stored.announcement.clone(),
        target_roles: stored.target_roles.clone(),
        starts_ms: stored.starts_ms,
        ends_ms: stored.ends_ms,
    };
    let delivered = ask(state.registry(), REGISTRY, msg).await?;
    let detail = json!({ "announcementId": id, "delivered": delivered });
    state.sessions.records.audit("announce", None, None, detail);
    let created = AnnouncementCreated {
        announcement_id: id,
        delivered,
    };
    Ok(answer(StatusCode::CREATED, &created))
}

/// The newest announcements, active or not.
#[utoipa::path(get, path = "/admin/announcements", tag = "announcements",
    responses((status = 200, body = AnnouncementList)))]
pub async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = state
        .sessions
        .announcements
        .list(LIST_MAX)
        .await
        .map_err(store_down)?;
    let now = now_ms();
    let announcements = all.iter().map(|a| listed(a, now)).collect();
    Ok(answer(StatusCode::OK, &AnnouncementList { announcements }))
}

/// Ends an announcement: later connections no longer get it.
#[utoipa::path(delete, path = "/admin/announcements/{id}", tag = "announcements",
    params(("id" = String, Path, description = "the announcementId")),
    responses((status = 200, body = ListedAnnouncement)))]
pub async fn end(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if id.is_empty() || id.len() > MAX_NAME_LEN || id.contains('\0') {
        return Err(ApiError::new(ErrorCode::NotFound, "no such announcement"));
    }
    let now = now_ms();
    let ended = state
        .sessions
        .announcements
        .end(&id, now)
        .await
        .map_err(store_down)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no announcement {id:?}")))?;
    let detail = json!({ "ended": id });
    state.sessions.records.audit("announce", None, None, detail);
    // Every node drops its timer for it, if it had not started.
    let msg = EndAnnouncement {
        announcement_id: id,
    };
    ask(state.registry(), REGISTRY, msg).await?;
    Ok(answer(StatusCode::OK, &listed(&ended, now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const NOW: i64 = 1_800_000_000_000;

    fn body(extra: Value) -> NewAnnouncement {
        let mut v = json!({"title": "Deploy", "message": "at noon", "type": "maintenance"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_plain_one_targets_everyone_from_now_on() {
        let a = body(json!({})).build("a1".into(), NOW).unwrap();
        assert_eq!(a.target_roles, Vec::<String>::new());
        assert_eq!((a.starts_ms, a.ends_ms, a.created_ms), (None, None, NOW));
        assert!(a.active_at(NOW));
    }

    #[test]
    fn times_are_parsed_and_checked() {
        let a = body(
            json!({"startsAt": "2027-01-15T10:00:00+01:00", "endsAt": "2999-01-01T00:00:00Z"}),
        )
        .build("a".into(), NOW)
        .unwrap();
        assert_eq!(
            a.announcement.starts_at.as_deref(),
            Some("2027-01-15T09:00:00.000Z")
        );
        assert!(!a.active_at(NOW));
        for bad in [
            json!({"startsAt": "soon"}),
            json!({"endsAt": "2001-01-01T00:00:00Z"}),
            json!({"startsAt": "2999-01-02T00:00:00Z", "endsAt": "2999-01-01T00:00:00Z"}),
        ] {
            assert!(body(bad.clone()).build("a".into(), NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_roles_are_bounded() {
        for bad in [
            json!({"title": ""}),
            json!({"title": "x".repeat(MAX_TITLE + 1)}),
            json!({"message": " "}),
            json!({"message": "x".repeat(MAX_MESSAGE + 1)}),
            json!({"message": "a\u{0}b"}),
            json!({"targetRoles": [""]}),
            json!({"targetRoles": ["r".repeat(MAX_ROLE_LEN + 1)]}),
            json!({"targetRoles": vec!["r"; MAX_TARGET_ROLES + 1]}),
        ] {
            assert!(body(bad.clone()).build("a".into(), NOW).is_err(), "{bad}");
        }
        let ok = body(json!({"targetRoles": ["staff", "beta"]}))
            .build("a".into(), NOW)
            .unwrap();
        assert_eq!(ok.target_roles, ["staff", "beta"]);
    }

    #[test]
    fn unknown_types_do_not_parse() {
        let v = json!({"title": "t", "message": "m", "type": "party"});
        assert!(serde_json::from_value::<NewAnnouncement>(v).is_err());
    }
}
