//! The session's side of the managed-room commands: they run as a task of
//! their own (database work, no actor waits for it), then the registry
//! applies their changes, and only then is the command answered.

use actix::prelude::*;
use actix_web_actors::ws;

use super::{Answered, Session};
use crate::actors::room_registry::apply_changes;
use crate::protocol::{CommandError, CommandId, ErrorCode, RoomCommand};

impl Session {
    pub(super) fn room_command(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: Option<CommandId>,
        cmd: RoomCommand,
    ) {
        let service = self.deps.rooms.clone();
        let registry = self.deps.registry.clone();
        let identity = self.identity.clone();
        let limit = self.deps.cfg.registry_timeout;
        let session = ctx.address();
        actix::spawn(async move {
            let run = async {
                let done = service.run(&identity, cmd).await?;
                apply_changes(&registry, done.changes).await;
                Ok(done.data)
            };
            let result = match tokio::time::timeout(limit, run).await {
                Ok(result) => result,
                Err(_) => Err(CommandError::new(
                    ErrorCode::Unavailable,
                    "the room command did not complete in time",
                )),
            };
            session.do_send(Answered { id, result });
        });
    }
}
