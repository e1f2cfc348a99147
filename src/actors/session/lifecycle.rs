//! The session's side of `message:edit` and `message:delete`: the registry
//! checks, stores and announces; the session answers.

use actix_web_actors::ws;
use serde_json::json;

use super::Session;
use crate::actors::messages::{ChangeMessage, MarkRead};
use crate::broker::MessageChange;
use crate::protocol::{CommandId, LifecycleCommand};

impl Session {
    pub(super) fn lifecycle_command(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: Option<CommandId>,
        cmd: LifecycleCommand,
    ) {
        match cmd {
            LifecycleCommand::Edit {
                room,
                message_id,
                content,
                metadata,
            } => {
                let msg = ChangeMessage {
                    id: self.id,
                    room,
                    message_id,
                    change: MessageChange::Edit { content, metadata },
                };
                self.ask(ctx, id, msg, |record| {
                    json!({ "messageId": record.message_id, "editedAt": record.edited_at })
                });
            }
            LifecycleCommand::Read { room, seq } => {
                let msg = MarkRead {
                    id: self.id,
                    room,
                    seq,
                };
                self.ask(ctx, id, msg, |at| json!({ "lastReadSeq": at }));
            }
            LifecycleCommand::Delete { room, message_id } => {
                let msg = ChangeMessage {
                    id: self.id,
                    room,
                    message_id,
                    change: MessageChange::Delete,
                };
                self.ask(ctx, id, msg, |_| json!({}));
            }
        }
    }
}
