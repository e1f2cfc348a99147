//! The wire types of notifications and announcements (`docs/protocol.md`
//! §15): `notification:list` and its cursor, `notification:read`'s targets,
//! the announcement object.

use serde::{Deserialize, Serialize};

use super::{limit, name, required, CommandError, Notification};

/// The most notifications one `notification:list` returns.
pub const NOTIFICATION_LIST_MAX_LIMIT: usize = 100;
/// Default `limit` of `notification:list`.
pub const NOTIFICATION_LIST_DEFAULT_LIMIT: usize = 50;
/// Most ids one `notification:read` takes.
pub const MAX_NOTIFICATION_IDS: usize = 100;

/// A `before` field as sent: a seq (`history:get`) or an id
/// (`notification:list`). Each command takes only its own form, so the one
/// frame parser serves both without guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Seq(u64),
    Id(String),
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Cursor;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a seq (a whole number) or an id (a string)")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Cursor, E> {
                Ok(Cursor::Seq(n))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Cursor, E> {
                Ok(Cursor::Id(s.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Cursor, E> {
                Ok(Cursor::Id(s))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `history:get`'s `before`: a seq.
pub(super) fn seq_cursor(before: Option<Cursor>) -> Result<Option<u64>, CommandError> {
    match before {
        None => Ok(None),
        Some(Cursor::Seq(n)) => Ok(Some(n)),
        Some(Cursor::Id(_)) => Err(CommandError::bad_request(
            "`before` of history:get is a seq (a whole number)",
        )),
    }
}

/// `notification:list`'s `before`: a notificationId.
fn id_cursor(before: Option<Cursor>) -> Result<Option<String>, CommandError> {
    match before {
        None => Ok(None),
        Some(Cursor::Id(id)) => {
            if id.contains('\0') {
                return Err(CommandError::bad_request(
                    "`before` must not contain NUL characters",
                ));
            }
            name(Some(id), "before")
        }
        Some(Cursor::Seq(_)) => Err(CommandError::bad_request(
            "`before` of notification:list is a notificationId (a string)",
        )),
    }
}

/// A checked `notification:list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationList {
    pub unread_only: bool,
    /// The notificationId the page ends before (newest first).
    pub before: Option<String>,
    pub limit: usize,
}

pub(super) fn list(
    unread_only: Option<bool>,
    before: Option<Cursor>,
    page: Option<u64>,
) -> Result<NotificationList, CommandError> {
    Ok(NotificationList {
        unread_only: unread_only.unwrap_or(false),
        before: id_cursor(before)?,
        limit: limit(
            page,
            NOTIFICATION_LIST_DEFAULT_LIMIT,
            NOTIFICATION_LIST_MAX_LIMIT,
        )?,
    })
}

/// One entry of `notification:list`: the notification and when it was read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedNotification {
    #[serde(flatten)]
    pub notification: Notification,
    /// Null while unread.
    pub read_at: Option<String>,
}

/// What `notification:read` marks read.
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationsToRead {
    One(String),
    /// 1 to [`MAX_NOTIFICATION_IDS`]; ids not the user's are left alone.
    Some(Vec<String>),
    All,
}

pub(super) fn to_read(
    one: Option<String>,
    many: Option<Vec<String>>,
    all: Option<bool>,
) -> Result<NotificationsToRead, CommandError> {
    match (one, many, all) {
        (Some(id), None, None) => Ok(NotificationsToRead::One(required(
            name(Some(id), "notificationId")?,
            "notificationId",
        )?)),
        (None, Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_NOTIFICATION_IDS {
                return Err(CommandError::bad_request(format!(
                    "`notificationIds` must list 1 to {MAX_NOTIFICATION_IDS} ids"
                )));
            }
            for id in &ids {
                name(Some(id.clone()), "notificationIds")?;
                if id.contains('\0') {
                    return Err(CommandError::bad_request(
                        "`notificationIds` must not contain NUL characters",
                    ));
                }
            }
            Ok(NotificationsToRead::Some(ids))
        }
        (None, None, Some(true)) => Ok(NotificationsToRead::All),
        _ => Err(CommandError::bad_request(
            "give one of `notificationId`, `notificationIds` or `all: true`",
        )),
    }
}

/// What an announcement is about; clients style it by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnnouncementType {
    Maintenance,
    Feature,
    Warning,
}

impl AnnouncementType {
    pub const ALL: [AnnouncementType; 3] = [
        AnnouncementType::Maintenance,
        AnnouncementType::Feature,
        AnnouncementType::Warning,
    ];

    /// The name stored in the database and written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            AnnouncementType::Maintenance => "maintenance",
            AnnouncementType::Feature => "feature",
            AnnouncementType::Warning => "warning",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An announcement as connections receive it (under `data` of the
/// `announcement` event: its `type` would clash with the event's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    pub announcement_id: String,
    pub title: String,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: AnnouncementType,
    /// Null: from its creation.
    pub starts_at: Option<String>,
    /// Null: until it is ended (`DELETE /admin/announcements/{id}`).
    pub ends_at: Option<String>,
}

/// Whether a connection whose token has `roles` is among `targets` (empty:
/// everyone): one role in common is enough.
pub fn roles_meet(roles: &[String], targets: &[String]) -> bool {
    targets.is_empty() || targets.iter().any(|t| roles.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_take_their_command_s_form() {
        let seq: Cursor = serde_json::from_str("7").unwrap();
        assert_eq!(seq_cursor(Some(seq.clone())), Ok(Some(7)));
        assert!(id_cursor(Some(seq)).is_err());
        let id: Cursor = serde_json::from_str(r#""n-1""#).unwrap();
        assert_eq!(id_cursor(Some(id.clone())), Ok(Some("n-1".into())));
        assert!(seq_cursor(Some(id)).is_err());
        assert!(serde_json::from_str::<Cursor>("-1").is_err());
        assert!(serde_json::from_str::<Cursor>("1.5").is_err());
        assert!(serde_json::from_str::<Cursor>("[]").is_err());
        assert!(id_cursor(Some(Cursor::Id(String::new()))).is_err());
        assert!(id_cursor(Some(Cursor::Id("a\0".into()))).is_err());
    }

    #[test]
    fn list_limits() {
        let page = list(None, None, None).unwrap();
        assert_eq!(
            (page.unread_only, page.limit),
            (false, NOTIFICATION_LIST_DEFAULT_LIMIT)
        );
        assert!(list(None, None, Some(0)).is_err());
        assert!(list(None, None, Some(NOTIFICATION_LIST_MAX_LIMIT as u64 + 1)).is_err());
        assert_eq!(list(Some(true), None, Some(3)).unwrap().limit, 3);
    }

    #[test]
    fn roles_meet_on_one_in_common_or_no_targets() {
        let roles = ["staff".to_string(), "beta".to_string()];
        assert!(roles_meet(&roles, &[]));
        assert!(roles_meet(&[], &[]));
        assert!(roles_meet(&roles, &["beta".into(), "ops".into()]));
        assert!(!roles_meet(&roles, &["ops".into()]));
        assert!(!roles_meet(&[], &["ops".into()]));
    }

    #[test]
    fn announcement_types_round_trip() {
        for t in AnnouncementType::ALL {
            assert_eq!(AnnouncementType::parse(t.as_str()), Some(t));
        }
        let a = Announcement {
            announcement_id: "a1".into(),
            title: "t".into(),
            message: "m".into(),
            kind: AnnouncementType::Maintenance,
            starts_at: None,
            ends_at: Some("2999-01-01T00:00:00.000Z".into()),
        };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["type"], "maintenance");
        assert_eq!(json["startsAt"], serde_json::Value::Null);
    }
}
