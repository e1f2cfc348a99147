//! The wire types of the message lifecycle (`docs/protocol.md` §14): message
//! kinds, `message:edit`, `message:delete`, `room:read`, and the checks on
//! their fields.

use serde::{Deserialize, Serialize};

use super::{name, required, room, CommandError, DecodeLimits, ErrorCode, Frame, RawJson};

/// What a message is; clients render by it. `system` is the server's own
/// (`POST /admin/rooms/{room}/messages`) and refused from clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    #[default]
    Text,
    Image,
    File,
    Audio,
    Video,
    Location,
    System,
}

impl MessageKind {
    pub const ALL: [MessageKind; 7] = [
        MessageKind::Text,
        MessageKind::Image,
        MessageKind::File,
        MessageKind::Audio,
        MessageKind::Video,
        MessageKind::Location,
        MessageKind::System,
    ];

    /// The name stored in the database and written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::File => "file",
            MessageKind::Audio => "audio",
            MessageKind::Video => "video",
            MessageKind::Location => "location",
            MessageKind::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind a client asked for: absent is `text`; `system` is the
    /// server's (FORBIDDEN); anything else unknown is BAD_REQUEST.
    pub fn from_client(value: Option<&str>) -> Result<Self, CommandError> {
        match value.map(|v| (v, Self::parse(v))) {
            None => Ok(MessageKind::Text),
            Some((_, Some(MessageKind::System))) => Err(CommandError::new(
                ErrorCode::Forbidden,
                "kind `system` is reserved to the server",
            )),
            Some((_, Some(kind))) => Ok(kind),
            Some((v, None)) => Err(CommandError::bad_request(format!(
                "unknown kind `{}`: use text, image, file, audio, video or location",
                super::truncate(v, 32)
            ))),
        }
    }
}

/// `message:edit` and `message:delete`.
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleCommand {
    Edit {
        room: String,
        message_id: String,
        content: String,
        metadata: Option<RawJson>,
    },
    Delete {
        room: String,
        message_id: String,
    },
    /// `room:read`: the user has read the room up to `seq`.
    Read {
        room: String,
        seq: u64,
    },
}

/// Checks a frame into a lifecycle command; `None` when `kind` is not one.
pub(super) fn command(
    kind: &str,
    f: &mut Frame,
    limits: &DecodeLimits,
) -> Option<Result<LifecycleCommand, CommandError>> {
    let cmd = match kind {
        "message:edit" => edit(f, limits),
        "message:delete" => (|| {
            Ok(LifecycleCommand::Delete {
                room: room(f.room.take())?,
                message_id: message_id(f.message_id.take())?,
            })
        })(),
        "room:read" => (|| {
            Ok(LifecycleCommand::Read {
                room: room(f.room.take())?,
                seq: required(f.seq, "seq")?,
            })
        })(),
        _ => return None,
    };
    Some(cmd)
}

fn edit(f: &mut Frame, limits: &DecodeLimits) -> Result<LifecycleCommand, CommandError> {
    let content = required(f.content.take(), "content")?;
    check_content(&content, f.metadata.as_ref(), limits)?;
    Ok(LifecycleCommand::Edit {
        room: room(f.room.take())?,
        message_id: message_id(f.message_id.take())?,
        content,
        metadata: f.metadata.take(),
    })
}

pub(super) fn message_id(value: Option<String>) -> Result<String, CommandError> {
    required(name(value, "messageId")?, "messageId")
}

/// The limits of a message's `content` and `metadata` (send and edit).
pub fn check_content(
    content: &str,
    metadata: Option<&RawJson>,
    limits: &DecodeLimits,
) -> Result<(), CommandError> {
    let chars = content.chars().count();
    if chars > limits.max_message_chars {
        return Err(CommandError::new(
            ErrorCode::TooLarge,
            format!(
                "content is {chars} characters, the limit is {}",
                limits.max_message_chars
            ),
        ));
    }
    if let Some(meta) = metadata {
        if !meta.get().starts_with('{') {
            return Err(CommandError::bad_request("`metadata` must be an object"));
        }
        if meta.get().len() > limits.max_metadata_bytes {
            return Err(CommandError::new(
                ErrorCode::TooLarge,
                format!(
                    "metadata is {} bytes, the limit is {}",
                    meta.get().len(),
                    limits.max_metadata_bytes
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_clients() {
        assert_eq!(MessageKind::from_client(None), Ok(MessageKind::Text));
        assert_eq!(
            MessageKind::from_client(Some("image")),
            Ok(MessageKind::Image)
        );
        let system = MessageKind::from_client(Some("system")).unwrap_err();
        assert_eq!(system.code, ErrorCode::Forbidden);
        let unknown = MessageKind::from_client(Some("sticker")).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::BadRequest);
        for k in MessageKind::ALL {
            assert_eq!(MessageKind::parse(k.as_str()), Some(k));
        }
    }
}
