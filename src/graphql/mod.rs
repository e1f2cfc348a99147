//! GraphQL: another face of the same server (docs/graphql.md).
//!
//! `POST /graphql` and `GET /graphql` run queries and mutations; a
//! WebSocket on `/graphql` (`graphql-transport-ws`, or the legacy
//! `graphql-ws`) runs subscriptions too. Nothing here is a second pub/sub:
//! every resolver turns its arguments into the `/ws` command they stand
//! for, checked by the same decoder (`protocol::decode`), and asks the
//! RoomRegistry the same messages a session does, as a connection the
//! registry knows (`Viewer`). So access rules, rate limits, the group
//! commit, fan-out across nodes and metrics are the `/ws` ones.

mod http;
mod mutation;
mod query;
pub mod router;
mod socket;
mod subscription;
pub mod types;

use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use async_graphql::{ErrorExtensions, Schema};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::actors::conn::{ConnHandle, ConnId};
use crate::actors::messages::{Connect, ConnectionInfo, Disconnect, ToSession};
use crate::actors::room_registry::RoomRegistry;
use crate::actors::session::SessionDeps;
use crate::auth::Identity;
use crate::mailbox::Tracked;
use crate::metrics::inc;
use crate::protocol::{decode, Command, CommandError, ErrorCode};

pub use http::routes;
use router::Router;

pub type GqlSchema =
    Schema<query::QueryRoot, mutation::MutationRoot, subscription::SubscriptionRoot>;

/// Deepest selection a request may have; the schema's own types nest less.
pub const MAX_DEPTH: usize = 8;
/// Most fields (each list counted once) a request may select.
pub const MAX_COMPLEXITY: usize = 400;

/// The schema; with introspection only in development mode.
pub fn schema(introspection: bool) -> &'static GqlSchema {
    static DEV: OnceLock<GqlSchema> = OnceLock::new();
    static PROD: OnceLock<GqlSchema> = OnceLock::new();
    let build = |introspection: bool| {
        let builder = Schema::build(
            query::QueryRoot,
            mutation::MutationRoot,
            subscription::SubscriptionRoot,
        )
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY);
        if introspection {
            builder.finish()
        } else {
            builder.disable_introspection().finish()
        }
    };
    if introspection {
        DEV.get_or_init(|| build(true))
    } else {
        PROD.get_or_init(|| build(false))
    }
}

/// The schema in SDL, as `docs/graphql.graphql` holds it.
pub fn sdl() -> String {
    schema(true).sdl()
}

/// A `CommandError` as a GraphQL error: the same message, and the error
/// table's code (and `retryAfterMs`) under `extensions`.
pub fn gql_error(e: CommandError) -> async_graphql::Error {
    let code = serde_json::to_value(e.code).unwrap_or(Value::Null);
    let retry = e.retry_after_ms;
    async_graphql::Error::new(e.message).extend_with(|_, ext| {
        ext.set(
            "code",
            async_graphql::Value::from_json(code).unwrap_or_default(),
        );
        if let Some(ms) = retry {
            ext.set("retryAfterMs", ms);
        }
    })
}

/// How a viewer is known to the registry.
enum Link {
    /// A `/graphql` socket: registered for its whole life.
    Socket { id: ConnId, router: Arc<Router> },
    /// One HTTP request: registered on first need, gone when it ends.
    Request {
        id: ConnId,
        info: Box<ConnectionInfo>,
        registered: OnceCell<Result<(), CommandError>>,
    },
}

/// Who is asking, and through which connection: the context every
/// resolver reads.
pub struct Viewer {
    pub identity: Arc<Identity>,
    pub deps: Arc<SessionDeps>,
    link: Link,
}

impl Viewer {
    fn socket(
        identity: Arc<Identity>,
        deps: Arc<SessionDeps>,
        id: ConnId,
        router: Arc<Router>,
    ) -> Self {
        Viewer {
            identity,
            deps,
            link: Link::Socket { id, router },
        }
    }

    fn request(identity: Arc<Identity>, deps: Arc<SessionDeps>, info: ConnectionInfo) -> Self {
        Viewer {
            identity,
            deps,
            link: Link::Request {
                id: uuid::Uuid::new_v4(),
                info: Box::new(info),
                registered: OnceCell::new(),
            },
        }
    }

    /// The viewer a resolver runs for.
    pub fn of<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a Viewer> {
        Ok(ctx.data::<Arc<Viewer>>()?.as_ref())
    }

    /// The connection's id (an HTTP request's, registered or not).
    fn id(&self) -> ConnId {
        match &self.link {
            Link::Socket { id, .. } | Link::Request { id, .. } => *id,
        }
    }

    /// The subscriptions' router: sockets only.
    fn router(&self) -> async_graphql::Result<&Arc<Router>> {
        match &self.link {
            Link::Socket { router, .. } => Ok(router),
            Link::Request { .. } => Err(gql_error(CommandError::bad_request(
                "subscriptions need the WebSocket on /graphql",
            ))),
        }
    }

    /// The connection the registry knows this viewer by; an HTTP request
    /// registers one the first time it needs it.
    async fn conn(&self) -> async_graphql::Result<ConnId> {
        match &self.link {
            Link::Socket { id, .. } => Ok(*id),
            Link::Request {
                id,
                info,
                registered,
            } => {
                let done = registered
                    .get_or_init(|| self.register(*id, (**info).clone()))
                    .await;
                done.clone().map(|()| *id).map_err(gql_error)
            }
        }
    }

    async fn register(&self, id: ConnId, info: ConnectionInfo) -> Result<(), CommandError> {
        let wait = std::time::Duration::from_secs(5);
        let slot = tokio::time::timeout(wait, self.deps.registry.bound().slot())
            .await
            .map_err(|_| CommandError::new(ErrorCode::Unavailable, "the server is too busy"))?;
        let handle = ConnHandle::new(None, self.deps.metrics.clone());
        let session = Discard {
            handle: handle.clone(),
        }
        .start();
        let connect = Connect {
            id,
            identity: self.identity.clone(),
            session: session.recipient(),
            handle,
            info,
        };
        self.deps.registry.tell_in(slot, connect);
        Ok(())
    }

    /// An HTTP request's connection, if it registered one, is forgotten.
    async fn finish(&self) {
        if let Link::Request { id, registered, .. } = &self.link {
            if matches!(registered.get(), Some(Ok(()))) {
                if let Some(wait) = self.deps.registry.tell(Disconnect { id: *id }) {
                    wait.await;
                }
            }
        }
    }

    /// One operation against the user's command budget (as one `/ws` frame).
    fn charge(&self) -> async_graphql::Result<()> {
        inc(&self.deps.metrics.commands);
        match self.deps.limiters.check_command(&self.identity.user_id) {
            Ok(()) => Ok(()),
            Err(wait) => {
                inc(&self.deps.metrics.rate_limited);
                let ms = (wait.as_millis() as u64).max(1);
                Err(gql_error(CommandError::rate_limited(ms)))
            }
        }
    }

    /// The `/ws` command `frame` stands for, checked by the same decoder,
    /// charged to the same budget.
    fn command(&self, mut frame: Value) -> async_graphql::Result<Command> {
        self.charge()?;
        // An argument left out is a field left out (not a JSON null,
        // which `metadata` would keep as a value).
        if let Some(fields) = frame.as_object_mut() {
            fields.retain(|_, v| !v.is_null());
        }
        decode(&frame.to_string(), &self.deps.cfg.decode)
            .map(|request| request.command)
            .map_err(|rejected| {
                inc(&self.deps.metrics.command_errors);
                gql_error(rejected.error)
            })
    }

    /// Asks the registry, as a session does (`Session::ask`).
    async fn ask<M, T>(&self, msg: M) -> async_graphql::Result<T>
    where
        M: Message<Result = Result<T, CommandError>> + Send + 'static,
        T: Send + 'static,
        RoomRegistry: Handler<Tracked<M>>,
    {
        let request = self
            .deps
            .registry
            .ask(msg)
            .map_err(|full| CommandError::busy("the room registry", full));
        let result = match request {
            Ok(request) => match request.timeout(self.deps.cfg.registry_timeout).await {
                Ok(result) => result,
                Err(MailboxError::Timeout) => Err(CommandError::new(
                    ErrorCode::Unavailable,
                    "the room registry did not answer in time",
                )),
                Err(MailboxError::Closed) => Err(CommandError::new(
                    ErrorCode::Internal,
                    "the room registry is not running",
                )),
            },
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            inc(&self.deps.metrics.command_errors);
            gql_error(e)
        })
    }
}

/// The registry's side of an HTTP request's connection: nothing it
/// delivers has a reader.
struct Discard {
    handle: Arc<ConnHandle>,
}

impl Actor for Discard {
    type Context = Context<Self>;
}

impl Handler<ToSession> for Discard {
    type Result = ();
    fn handle(&mut self, msg: ToSession, ctx: &mut Context<Self>) {
        self.handle.dequeued();
        if let ToSession::Shutdown { .. } = msg {
            ctx.stop();
        }
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        self.handle.mark_closed();
    }
}
