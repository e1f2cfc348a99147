//! The one table of errors: every error code with its wire name, HTTP
//! status and whether the same request may succeed later, and every way the
//! server closes a connection with its close code and reason.
//!
//! Commands answer with [`CommandError`] frames, HTTP endpoints with the
//! same body and the status from this table (`http::ApiError`), so a code
//! means the same on the socket and over HTTP.

use serde::{Serialize, Serializer};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    UnknownType,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    MethodNotAllowed,
    NotInRoom,
    RateLimited,
    TooLarge,
    RoomFull,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// Wire name, HTTP status, temporary (the same request may succeed
    /// later, unchanged).
    const fn spec(self) -> (&'static str, u16, bool) {
        use ErrorCode::*;
        match self {
            BadRequest => ("BAD_REQUEST", 400, false),
            UnknownType => ("UNKNOWN_TYPE", 400, false),
            Unauthorized => ("UNAUTHORIZED", 401, false),
            Forbidden => ("FORBIDDEN", 403, false),
            NotFound => ("NOT_FOUND", 404, false),
            Conflict => ("CONFLICT", 409, false),
            MethodNotAllowed => ("METHOD_NOT_ALLOWED", 405, false),
            NotInRoom => ("NOT_IN_ROOM", 409, false),
            TooLarge => ("TOO_LARGE", 413, false),
            RoomFull => ("ROOM_FULL", 409, true),
            RateLimited => ("RATE_LIMITED", 429, true),
            Unavailable => ("UNAVAILABLE", 503, true),
            Internal => ("INTERNAL", 500, false),
        }
    }

    /// The name on the wire, e.g. `RATE_LIMITED`.
    pub const fn as_str(self) -> &'static str {
        self.spec().0
    }

    /// The HTTP status an endpoint answers this code with.
    pub const fn http_status(self) -> u16 {
        self.spec().1
    }

    /// Whether repeating the same request later may succeed (after
    /// `retryAfterMs`, when given).
    pub const fn is_temporary(self) -> bool {
        self.spec().2
    }
}

impl ErrorCode {
    /// Every code, in the order of the table above.
    pub const ALL: [ErrorCode; 13] = {
        use ErrorCode::*;
        [
            BadRequest,
            UnknownType,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            MethodNotAllowed,
            NotInRoom,
            RateLimited,
            TooLarge,
            RoomFull,
            Unavailable,
            Internal,
        ]
    };
}

/// In the OpenAPI document: a string, one of the wire names.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Self::ALL.iter().map(|c| c.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An error answer to a command (or an HTTP request).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Error)]
pub struct CommandError {
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// When the same request may be tried again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl CommandError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
            retry_after_ms: None,
            details: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    /// An actor's mailbox was full (`full` says how full): nothing was
    /// queued or changed, the client may try again shortly.
    pub fn busy(what: &str, full: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::Unavailable,
            format!("{what} is busy ({full}); try again shortly"),
        )
    }
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        CommandError {
            retry_after_ms: Some(retry_after_ms),
            ..Self::new(ErrorCode::RateLimited, "rate limit exceeded, slow down")
        }
    }
}

/// WebSocket close codes of the contract.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const TOO_LARGE: u16 = 1009;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const KICKED: u16 = 4003;
    pub const POLICY: u16 = 4008;
    pub const SLOW_CONSUMER: u16 = 4009;
    pub const HEARTBEAT_TIMEOUT: u16 = 4010;
    /// Handshake refusals told to browsers by a close frame (see
    /// [`refusal_close`]): 4000 + the HTTP status, except 401 which is the
    /// contract's 4001 ("get a new token").
    pub const REFUSED_BAD_REQUEST: u16 = 4400;
    pub const REFUSED_FORBIDDEN: u16 = 4403;
    pub const REFUSED_RATE_LIMITED: u16 = 4429;
    pub const REFUSED_UNAVAILABLE: u16 = 4503;
}

/// A refused handshake as a close code and reason, for clients that sent
/// their token in the query string (browsers): a browser sees every refused
/// HTTP upgrade as an anonymous 1006, so such a client gets the upgrade and
/// then this close at once. The reason is the error's message, with
/// `; retryAfterMs=N` at its end when the refusal has one, within the 123
/// bytes a close reason may hold.
pub fn refusal_close(err: &CommandError) -> (u16, String) {
    let code = match err.code {
        ErrorCode::Unauthorized => close::TOKEN_EXPIRED,
        ErrorCode::Forbidden => close::REFUSED_FORBIDDEN,
        ErrorCode::RateLimited => close::REFUSED_RATE_LIMITED,
        ErrorCode::Unavailable => close::REFUSED_UNAVAILABLE,
        _ => close::REFUSED_BAD_REQUEST,
    };
    let suffix = err
        .retry_after_ms
        .map(|ms| format!("; retryAfterMs={ms}"))
        .unwrap_or_default();
    let mut end = err.message.len().min(123 - suffix.len());
    while !err.message.is_char_boundary(end) {
        end -= 1;
    }
    (code, format!("{}{suffix}", &err.message[..end]))
}

/// Why a handshake was refused: the `reason` label of
/// `realtime_handshakes_refused_total` and the word in the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotWebSocket,
    Origin,
    AddressRate,
    NoToken,
    BadToken,
    Revoked,
    RecordsBehind,
    UserLimit,
    NodeFull,
    RegistryBusy,
}

impl Refused {
    pub const ALL: [Refused; 10] = {
        use Refused::*;
        [
            NotWebSocket,
            Origin,
            AddressRate,
            NoToken,
            BadToken,
            Revoked,
            RecordsBehind,
            UserLimit,
            NodeFull,
            RegistryBusy,
        ]
    };

    pub const fn label(self) -> &'static str {
        use Refused::*;
        match self {
            NotWebSocket => "not_websocket",
            Origin => "origin",
            AddressRate => "address_rate",
            NoToken => "no_token",
            BadToken => "bad_token",
            Revoked => "revoked",
            RecordsBehind => "records_behind",
            UserLimit => "user_limit",
            NodeFull => "node_full",
            RegistryBusy => "registry_busy",
        }
    }
}

/// Every reason the server itself closes a connection, with the code and
/// the reason text the client sees. (A kick carries the administrator's
/// reason with [`close::KICKED`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    ShuttingDown,
    ProtocolError,
    UnexpectedContinuation,
    InvalidUtf8Frame,
    InvalidUtf8Message,
    FrameTooLarge,
    MessageTooLarge,
    TooManyFragments,
    TokenExpired,
    TokenRevoked,
    Flood,
    SlowConsumer,
    HeartbeatTimeout,
}

impl Closing {
    /// Every reason, for tables and tests.
    pub const ALL: [Closing; 13] = {
        use Closing::*;
        [
            ShuttingDown,
            ProtocolError,
            UnexpectedContinuation,
            InvalidUtf8Frame,
            InvalidUtf8Message,
            FrameTooLarge,
            MessageTooLarge,
            TooManyFragments,
            TokenExpired,
            TokenRevoked,
            Flood,
            SlowConsumer,
            HeartbeatTimeout,
        ]
    };

    const fn spec(self) -> (u16, &'static str) {
        use Closing::*;
        match self {
            ShuttingDown => (close::GOING_AWAY, "server shutting down"),
            ProtocolError => (close::PROTOCOL_ERROR, "WebSocket protocol error"),
            UnexpectedContinuation => (close::PROTOCOL_ERROR, "unexpected continuation frame"),
            InvalidUtf8Frame => (close::INVALID_PAYLOAD, "text frame is not valid UTF-8"),
            InvalidUtf8Message => (close::INVALID_PAYLOAD, "text message is not valid UTF-8"),
            FrameTooLarge => (close::TOO_LARGE, "frame too large"),
            MessageTooLarge => (close::TOO_LARGE, "message too large"),
            TooManyFragments => (close::TOO_LARGE, "message split into too many frames"),
            TokenExpired => (close::TOKEN_EXPIRED, "token expired"),
            TokenRevoked => (close::TOKEN_EXPIRED, "token revoked"),
            Flood => (close::POLICY, "too many commands over the rate limit"),
            SlowConsumer => (close::SLOW_CONSUMER, "slow consumer: outbound queue full"),
            HeartbeatTimeout => (close::HEARTBEAT_TIMEOUT, "heartbeat timeout"),
        }
    }

    pub const fn code(self) -> u16 {
        self.spec().0
    }

    pub const fn reason(self) -> &'static str {
        self.spec().1
    }
}

/// Why a connection ended, as `realtime_closes_total{reason}` counts it
/// and the `disconnect` log line's `cause=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// The client sent a close frame.
    ClientClosed,
    /// The connection dropped without a close frame (the TCP connection
    /// ended or was reset): an ordinary client drop, not an error.
    ClientWentAway,
    /// A frame broke the WebSocket protocol (1002, 1007, 1009).
    ProtocolError,
    ServerShutdown,
    Kick,
    /// The token expired or was revoked (4001).
    Token,
    /// Too many commands over the rate limit (4008).
    Flood,
    SlowConsumer,
    /// No pong in time (4010).
    Idle,
    /// Any other close the server made.
    Server,
}

impl CloseCause {
    pub const ALL: [CloseCause; 10] = {
        use CloseCause::*;
        [
            ClientClosed,
            ClientWentAway,
            ProtocolError,
            ServerShutdown,
            Kick,
            Token,
            Flood,
            SlowConsumer,
            Idle,
            Server,
        ]
    };

    /// The cause of an ended connection: `server_close` is the code the
    /// server closed with (None when it did not), `client_closed` whether
    /// the client's close frame came first.
    pub const fn of(server_close: Option<u16>, client_closed: bool) -> CloseCause {
        use CloseCause::*;
        if client_closed {
            return ClientClosed;
        }
        match server_close {
            None => ClientWentAway,
            Some(close::GOING_AWAY) => ServerShutdown,
            Some(close::PROTOCOL_ERROR | close::INVALID_PAYLOAD | close::TOO_LARGE) => {
                ProtocolError
            }
            Some(close::KICKED) => Kick,
            Some(close::TOKEN_EXPIRED) => Token,
            Some(close::POLICY) => Flood,
            Some(close::SLOW_CONSUMER) => SlowConsumer,
            Some(close::HEARTBEAT_TIMEOUT) => Idle,
            Some(_) => Server,
        }
    }

    /// The metric label and the log's `cause=`.
    pub const fn label(self) -> &'static str {
        use CloseCause::*;
        match self {
            ClientClosed => "client_closed",
            ClientWentAway => "client_went_away",
            ProtocolError => "protocol_error",
            ServerShutdown => "server_shutdown",
            Kick => "kick",
            Token => "token",
            Flood => "flood",
            SlowConsumer => "slow_consumer",
            Idle => "idle",
            Server => "server",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_is_counted_as_what_it_is() {
        use CloseCause::*;
        assert_eq!(CloseCause::of(None, false), ClientWentAway);
        assert_eq!(CloseCause::of(None, true), ClientClosed);
        assert_eq!(CloseCause::of(Some(close::KICKED), false), Kick);
        for c in Closing::ALL {
            let cause = CloseCause::of(Some(c.code()), false);
            assert!(
                ![ClientClosed, ClientWentAway, Server].contains(&cause),
                "{c:?}"
            );
        }
        assert_eq!(
            CloseCause::of(Some(close::GOING_AWAY), false),
            ServerShutdown
        );
        assert_eq!(CloseCause::of(Some(4999), false), Server);
    }

    #[test]
    fn codes_serialise_to_their_wire_names() {
        for (code, name) in [
            (ErrorCode::BadRequest, "\"BAD_REQUEST\""),
            (ErrorCode::NotInRoom, "\"NOT_IN_ROOM\""),
            (ErrorCode::Conflict, "\"CONFLICT\""),
            (ErrorCode::MethodNotAllowed, "\"METHOD_NOT_ALLOWED\""),
            (ErrorCode::Unavailable, "\"UNAVAILABLE\""),
        ] {
            assert_eq!(serde_json::to_string(&code).unwrap(), name);
        }
    }

    #[test]
    fn only_waiting_can_help_with_temporary_errors() {
        assert!(ErrorCode::RateLimited.is_temporary());
        assert!(ErrorCode::Unavailable.is_temporary());
        assert!(!ErrorCode::Forbidden.is_temporary());
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        assert_eq!(ErrorCode::NotFound.http_status(), 404);
    }

    #[test]
    fn refusals_map_to_close_codes_and_keep_retry_after_within_123_bytes() {
        let long = CommandError {
            retry_after_ms: Some(1000),
            ..CommandError::new(ErrorCode::RateLimited, "é".repeat(100))
        };
        let (code, reason) = refusal_close(&long);
        assert_eq!(code, 4429);
        assert!(reason.len() <= 123 && reason.ends_with("; retryAfterMs=1000"));
        let (code, reason) = refusal_close(&CommandError::new(
            ErrorCode::Unauthorized,
            "token has expired",
        ));
        assert_eq!((code, reason.as_str()), (4001, "token has expired"));
        assert_eq!(
            refusal_close(&CommandError::new(ErrorCode::Forbidden, "x")).0,
            4403
        );
        assert_eq!(
            refusal_close(&CommandError::new(ErrorCode::Unavailable, "x")).0,
            4503
        );
    }

    #[test]
    fn close_reasons_fit_a_close_frame_and_codes_are_the_contracts() {
        // RFC 6455 5.5.1: the reason is at most 123 bytes.
        for c in Closing::ALL {
            assert!(c.reason().len() <= 123, "{c:?}");
            // and its code is one the contract names for the server's closes
            assert!(
                [1001, 1002, 1007, 1009, 4001, 4008, 4009, 4010].contains(&c.code()),
                "{c:?}"
            );
        }
    }
}
