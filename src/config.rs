//! One typed [`Settings`] loaded once at start-up.
//!
//! Precedence, lowest first: `config/default.toml` (built in, or the copy in
//! the working directory), the file named by `REALTIME_CONFIG`, the
//! `REALTIME__<SECTION>__<KEY>` variables, then the short variables of the
//! wire contract (`REALTIME_PORT`, `REALTIME_JWT_SECRET`, ...). `figment`
//! merges the layers (`sources` builds them); every error names the key and
//! the layer that set it, a file by its path and a variable by its name.
//! Unknown keys are refused so that a typo is an error, not a silently
//! ignored setting.
//!
//! Durations are [`Duration`] fields read from the documented whole-number
//! keys (`*_ms`, `*_secs`), so no caller converts units. List settings take a
//! TOML array or one comma-separated string, which is how a list fits in an
//! environment variable.

pub mod effective;
mod sources;
mod variables;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub heartbeat: HeartbeatSettings,
    pub typing: TypingSettings,
    pub limits: Limits,
    pub rate_limits: RateLimits,
    pub rooms: RoomSettings,
    pub mailbox: MailboxSettings,
    pub database: DatabaseSettings,
    pub audit: AuditSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    /// Environment variables that look meant for the server but set
    /// nothing (`config/variables.rs`): logged at start-up in development,
    /// refused in production.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub node_id: String,
    pub environment: Environment,
    pub workers: usize,
    #[serde(rename = "shutdown_timeout_secs", deserialize_with = "secs")]
    pub shutdown_timeout: Duration,
    /// Zero: never.
    #[serde(rename = "memory_trim_secs", deserialize_with = "secs")]
    pub memory_trim: Duration,
    pub malloc_arenas: usize,
    #[serde(deserialize_with = "list")]
    pub origins: Vec<String>,
    /// With `origins` set, still accept requests without an Origin header.
    pub allow_missing_origin: bool,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` give the client's
    /// address (IPs or CIDR ranges; `http::client_addr`).
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
    pub anonymous: bool,
    #[serde(rename = "client_request_timeout_ms", deserialize_with = "millis")]
    pub client_request_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: String,
    pub jwt_public_key: String,
    pub public_key_algorithm: String,
    pub issuer: String,
    pub audience: String,
    #[serde(rename = "leeway_secs", deserialize_with = "secs")]
    pub leeway: Duration,
    pub admin_token: String,
    /// How long a revocation holds when no `until` is given.
    #[serde(rename = "revocation_ttl_secs", deserialize_with = "secs")]
    pub revocation_ttl: Duration,
    /// How often each node reloads the revocations from the database.
    #[serde(rename = "revocation_refresh_secs", deserialize_with = "secs")]
    pub revocation_refresh: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSettings {
    #[serde(rename = "interval_ms", deserialize_with = "millis")]
    pub interval: Duration,
    #[serde(rename = "timeout_ms", deserialize_with = "millis")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingSettings {
    #[serde(rename = "timeout_ms", deserialize_with = "millis")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_fragments: usize,
    pub max_message_chars: usize,
    pub max_metadata_bytes: usize,
    pub max_rooms_per_connection: usize,
    pub max_connections_per_user: usize,
    pub max_connections: usize,
    pub max_users_per_room: usize,
    pub recovery_max: usize,
    pub join_members_max: usize,
    #[serde(rename = "slow_consumer_grace_ms", deserialize_with = "millis")]
    pub slow_consumer_grace: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    pub commands_per_second: u32,
    pub commands_burst: u32,
    pub connections_per_ip_per_second: u32,
    pub connections_per_ip_burst: u32,
    pub flood_close_after: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    #[serde(deserialize_with = "list")]
    pub public: Vec<String>,
    pub join_leave_events_max_users: usize,
    #[serde(default)]
    pub max_users: BTreeMap<String, usize>,
    /// Messages per second per user in rooms matching each pattern.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSettings {
    pub session: usize,
    pub registry: usize,
    pub presence: usize,
    pub redis: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub data_dir: String,
    pub run_migrations: bool,
    pub pool_size: usize,
    #[serde(rename = "timeout_ms", deserialize_with = "millis")]
    pub timeout: Duration,
    pub batch_max: usize,
    #[serde(rename = "batch_delay_ms", deserialize_with = "millis")]
    pub batch_delay: Duration,
    pub write_queue: usize,
    /// Message writer tasks, each with its own transaction; a room's
    /// messages always go to the same one.
    pub message_writers: usize,
    pub background_queue: usize,
    /// Background records waiting for room in a full queue; past this
    /// many (0: none wait) new records are dropped.
    pub background_overflow: usize,
    #[serde(rename = "retry_max_backoff_ms", deserialize_with = "millis")]
    pub retry_max_backoff: Duration,
    pub notifications_on_connect: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    pub prefix: String,
    pub pool_size: usize,
    #[serde(rename = "heartbeat_ms", deserialize_with = "millis")]
    pub heartbeat: Duration,
    #[serde(rename = "node_ttl_ms", deserialize_with = "millis")]
    pub node_ttl: Duration,
    #[serde(rename = "gather_timeout_ms", deserialize_with = "millis")]
    pub gather_timeout: Duration,
    #[serde(rename = "gap_timeout_ms", deserialize_with = "millis")]
    pub gap_timeout: Duration,
    #[serde(rename = "reconnect_max_backoff_ms", deserialize_with = "millis")]
    pub reconnect_max_backoff: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// How log lines look on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// env_logger's readable lines.
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `message`.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    #[serde(deserialize_with = "list")]
    pub events: Vec<String>,
}

/// The audit event kinds the server knows.
pub const AUDIT_KINDS: &[&str] = &[
    "connect",
    "disconnect",
    "kick",
    "revoke",
    "notify",
    "broadcast",
    "join",
    "leave",
    "rate_limited",
    "slow_consumer",
    "error",
    "room_change",
    "announce",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "environment variable {0} does not name a section and key (REALTIME__<SECTION>__<KEY>)"
    )]
    BadVariable(String),
    /// A layer that cannot be read, a value that does not fit its key, or
    /// settings that contradict each other; the text names key and layer.
    #[error("invalid settings: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads the settings from the files and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(&vars)
    }

    /// Loads the settings with `vars` standing in for the environment.
    pub fn load_from(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let layers = sources::layers(vars)?;
        // Lossy: an environment value is text, and becomes a number or a
        // boolean where the key is one (a string key keeps "123" as is).
        let mut settings: Settings = layers.extract_lossy().map_err(sources::describe)?;
        settings.validate().map_err(|(key, problem)| {
            ConfigError::Invalid(format!("{problem}{}", sources::set_by(&layers, key)))
        })?;
        settings.warnings = variables::suspicious(vars);
        if settings.server.environment == Environment::Production && !settings.warnings.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{}\n(server.environment is production: a variable that sets nothing is an error; remove or correct it)",
                settings.warnings.join("\n")
            )));
        }
        Ok(settings)
    }

    /// The checks no type expresses, as the key at fault and the problem.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let zero = [
            ("heartbeat.interval_ms", self.heartbeat.interval.is_zero()),
            ("heartbeat.timeout_ms", self.heartbeat.timeout.is_zero()),
            ("typing.timeout_ms", self.typing.timeout.is_zero()),
            ("limits.max_frame_bytes", self.limits.max_frame_bytes == 0),
            ("mailbox.session", self.mailbox.session == 0),
            ("limits.join_members_max", self.limits.join_members_max == 0),
            ("mailbox.registry", self.mailbox.registry == 0),
            ("mailbox.presence", self.mailbox.presence == 0),
            ("database.pool_size", self.database.pool_size == 0),
            ("mailbox.redis", self.mailbox.redis == 0),
            ("redis.pool_size", self.redis.pool_size == 0),
            ("redis.heartbeat_ms", self.redis.heartbeat.is_zero()),
            ("database.timeout_ms", self.database.timeout.is_zero()),
            ("database.batch_max", self.database.batch_max == 0),
            ("database.write_queue", self.database.write_queue == 0),
            (
                "database.message_writers",
                self.database.message_writers == 0,
            ),
            (
                "database.background_queue",
                self.database.background_queue == 0,
            ),
            (
                "rate_limits.commands_per_second",
                self.rate_limits.commands_per_second == 0,
            ),
            (
                "rate_limits.connections_per_ip_per_second",
                self.rate_limits.connections_per_ip_per_second == 0,
            ),
        ];
        if let Some((key, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err((key, format!("{key} must be greater than 0")));
        }
        if let Some(kind) = self
            .audit
            .events
            .iter()
            .find(|k| !AUDIT_KINDS.contains(&k.as_str()))
        {
            return Err((
                "audit.events",
                format!(
                    "audit.events: unknown kind {kind:?} (known: {})",
                    AUDIT_KINDS.join(", ")
                ),
            ));
        }
        if self.redis.node_ttl <= self.redis.heartbeat {
            return Err((
                "redis.node_ttl_ms",
                "redis.node_ttl_ms must be longer than redis.heartbeat_ms".into(),
            ));
        }
        if self.heartbeat.timeout <= self.heartbeat.interval {
            return Err((
                "heartbeat.timeout_ms",
                "heartbeat.timeout_ms must be longer than heartbeat.interval_ms".into(),
            ));
        }
        Ok(())
    }
}

/// A `*_ms` key: whole milliseconds.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// A `*_secs` key: whole seconds.
fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// A list setting: a TOML array of strings, or one string of comma-separated
/// items (`https://a.example,https://b.example`). Items are trimmed and empty
/// ones dropped, so an empty string is an empty list.
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(ListVisitor)
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of strings or comma-separated values")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        // An environment value that opens with `[` is read as TOML; reaching
        // here it did not parse, and splitting it on commas would hide that.
        if s.trim_start().starts_with('[') {
            return Err(E::custom(format!(
                "{s:?} starts like a TOML array but is not one \
                 (write [\"a\", \"b\"] or plain a,b)"
            )));
        }
        Ok(s.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(String::from)
            .collect())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(list: &[(&str, &str)]) -> String {
        Settings::load_from(&vars(list)).unwrap_err().to_string()
    }

    /// A REALTIME_CONFIG file holding `text`, kept while the guard lives.
    fn config_file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap().to_string();
        (dir, path)
    }

    #[test]
    fn defaults_load_with_an_empty_environment() {
        let s = Settings::load_from(&[]).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.heartbeat.interval, Duration::from_secs(25));
        assert_eq!(s.server.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(s.server.environment, Environment::Development);
        assert_eq!(s.rooms.public, vec!["lobby", "public:*"]);
        assert!(s.server.origins.is_empty());
        assert!(s.auth.jwt_secret.is_empty());
    }

    #[test]
    fn the_built_in_defaults_match_the_file() {
        assert_eq!(
            std::fs::read_to_string("config/default.toml").unwrap(),
            DEFAULT_TOML
        );
    }

    #[test]
    fn each_layer_wins_over_the_one_below() {
        let (_dir, path) = config_file(
            "[server]\nhost = \"file\"\nnode_id = \"file\"\nworkers = 3\n\
             [typing]\ntimeout_ms = 42\n",
        );
        let s = Settings::load_from(&vars(&[
            ("REALTIME_CONFIG", &path),
            ("REALTIME__SERVER__HOST", "section-var"),
            ("REALTIME__SERVER__NODE_ID", "section-var"),
            ("REALTIME_NODE_ID", "short-var"),
        ]))
        .unwrap();
        // defaults < file
        assert_eq!(s.server.workers, 3);
        assert_eq!(s.typing.timeout, Duration::from_millis(42));
        // file < REALTIME__SECTION__KEY
        assert_eq!(s.server.host, "section-var");
        // REALTIME__SECTION__KEY < short variable
        assert_eq!(s.server.node_id, "short-var");
        // untouched keys keep the default
        assert_eq!(s.heartbeat.interval, Duration::from_millis(25000));
    }

    #[test]
    fn environment_overrides_nested_keys_and_short_names() {
        let s = Settings::load_from(&vars(&[
            ("REALTIME__LIMITS__MAX_FRAME_BYTES", "1234"),
            ("REALTIME__ROOMS__PUBLIC", r#"["a", "b:*"]"#),
            ("REALTIME__ROOMS__MAX_USERS__SUPPORT", "2"),
            ("REALTIME__SERVER__ENVIRONMENT", "production"),
            ("REALTIME__SERVER__ANONYMOUS", "true"),
            ("REALTIME__REDIS__PREFIX", "2024"),
            ("REALTIME_PORT", "9001"),
            ("REALTIME_JWT_SECRET", "123"),
            ("DATABASE_URL", "postgres://db/x"),
        ]))
        .unwrap();
        assert_eq!(s.limits.max_frame_bytes, 1234);
        assert_eq!(s.rooms.public, vec!["a", "b:*"]);
        assert_eq!(s.rooms.max_users.get("support"), Some(&2));
        assert_eq!(s.server.environment, Environment::Production);
        assert!(s.server.anonymous);
        // A numeric-looking value stays a string where the key is one.
        assert_eq!(s.redis.prefix, "2024");
        assert_eq!(s.auth.jwt_secret, "123");
        assert_eq!(s.server.port, 9001);
        assert_eq!(s.database.url, "postgres://db/x");
    }

    #[test]
    fn lists_from_the_environment_are_comma_separated() {
        let s = Settings::load_from(&vars(&[
            (
                "REALTIME__SERVER__ORIGINS",
                "https://a.example,https://b.example",
            ),
            ("REALTIME__ROOMS__PUBLIC", "lobby"),
            ("REALTIME__AUDIT__EVENTS", "connect, kick ,"),
        ]))
        .unwrap();
        assert_eq!(
            s.server.origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(s.rooms.public, vec!["lobby"]);
        assert_eq!(s.audit.events, vec!["connect", "kick"]);

        let s = Settings::load_from(&vars(&[("REALTIME__ROOMS__PUBLIC", "")])).unwrap();
        assert!(s.rooms.public.is_empty());

        let err = error(&[("REALTIME__SERVER__ORIGINS", r#"["https://a.example""#)]);
        assert!(err.contains("server.origins"), "{err}");
        assert!(err.contains("TOML array"), "{err}");
    }

    #[test]
    fn a_bad_environment_value_names_the_key_and_the_variable() {
        let err = error(&[("REALTIME__LIMITS__MAX_FRAME_BYTES", "lots")]);
        assert!(err.contains("limits.max_frame_bytes"), "{err}");
        assert!(
            err.contains("environment variable REALTIME__LIMITS__MAX_FRAME_BYTES"),
            "{err}"
        );
        assert!(err.contains("\"lots\""), "{err}");

        let err = error(&[("REALTIME_PORT", "eighty")]);
        assert!(err.contains("server.port"), "{err}");
        assert!(err.contains("environment variable REALTIME_PORT"), "{err}");

        let err = error(&[("REALTIME__REDIS__GAP_TIMEOUT_MS", "-5")]);
        assert!(err.contains("redis.gap_timeout_ms"), "{err}");
    }

    #[test]
    fn a_bad_file_value_names_the_file() {
        let (_dir, path) = config_file("[typing]\ntimeout_ms = \"soon\"\n");
        let err = error(&[("REALTIME_CONFIG", &path)]);
        assert!(err.contains("typing.timeout_ms"), "{err}");
        assert!(err.contains(&path), "{err}");

        let (_dir, path) = config_file("[typing\n");
        let err = error(&[("REALTIME_CONFIG", &path)]);
        assert!(err.contains(&path), "{err}");

        let err = error(&[("REALTIME_CONFIG", "/nonexistent/realtime.toml")]);
        assert!(err.contains("/nonexistent/realtime.toml"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name_and_source() {
        let err = error(&[("REALTIME__LIMITS__MAX_FRAME_BYTEZ", "1")]);
        assert!(err.contains("limits.max_frame_bytez"), "{err}");
        assert!(err.contains("REALTIME__LIMITS__MAX_FRAME_BYTEZ"), "{err}");

        let (_dir, path) = config_file("[limits]\nhistory_size = 10\n");
        let err = error(&[("REALTIME_CONFIG", &path)]);
        assert!(err.contains("limits.history_size"), "{err}");
        assert!(err.contains(&path), "{err}");

        let err = error(&[("REALTIME__NOPE__KEY", "1")]);
        assert!(err.contains("nope"), "{err}");

        let err = error(&[("REALTIME__LIMITS", "1")]);
        assert!(err.contains("REALTIME__LIMITS"), "{err}");
    }

    #[test]
    fn inconsistent_settings_name_the_key_and_its_source() {
        let err = error(&[("REALTIME__MAILBOX__SESSION", "0")]);
        assert!(
            err.contains("mailbox.session must be greater than 0"),
            "{err}"
        );
        assert!(err.contains("REALTIME__MAILBOX__SESSION"), "{err}");

        let err = error(&[("REALTIME__AUDIT__EVENTS", "connect,conect")]);
        assert!(err.contains("\"conect\""), "{err}");

        let (_dir, path) = config_file("[heartbeat]\ntimeout_ms = 1000\n");
        let err = error(&[("REALTIME_CONFIG", &path)]);
        assert!(err.contains("heartbeat.timeout_ms must be longer"), "{err}");
        assert!(err.contains(&path), "{err}");
    }

    #[test]
    fn config_file_overlays_defaults() {
        let (_dir, path) = config_file(
            "[typing]\ntimeout_ms = 42\n[rooms.max_users]\n\"dm:*\" = 2\n\
             [server]\norigins = [\"https://a.example\"]\n",
        );
        let s = Settings::load_from(&vars(&[("REALTIME_CONFIG", &path)])).unwrap();
        assert_eq!(s.typing.timeout, Duration::from_millis(42));
        assert_eq!(s.rooms.max_users.get("dm:*"), Some(&2));
        assert_eq!(s.server.origins, vec!["https://a.example"]);
        assert_eq!(s.heartbeat.interval, Duration::from_millis(25000));
    }
}
