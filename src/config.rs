//! One typed [`Settings`] loaded once at start-up.
//!
//! Precedence, lowest first: `config/default.toml` (built in, or the copy in
//! the working directory), the file named by `REALTIME_CONFIG`, the
//! `REALTIME__<SECTION>__<KEY>` variables, then the short variables of the
//! wire contract (`REALTIME_PORT`, `REALTIME_JWT_SECRET`, ...). Unknown keys
//! are refused so that a typo is an error, not a silently ignored setting.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::{Table, Value};

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub node_id: String,
    pub environment: Environment,
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
    pub memory_trim_secs: u64,
    pub malloc_arenas: usize,
    pub origins: Vec<String>,
    pub anonymous: bool,
    pub client_request_timeout_ms: u64,
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
    pub leeway_secs: u64,
    pub admin_token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSettings {
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingSettings {
    pub timeout_ms: u64,
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
    pub slow_consumer_grace_ms: u64,
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
    pub public: Vec<String>,
    pub join_leave_events_max_users: usize,
    #[serde(default)]
    pub max_users: BTreeMap<String, usize>,
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
    pub timeout_ms: u64,
    pub batch_max: usize,
    pub batch_delay_ms: u64,
    pub write_queue: usize,
    pub background_queue: usize,
    pub retry_max_backoff_ms: u64,
    pub notifications_on_connect: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    pub prefix: String,
    pub pool_size: usize,
    pub heartbeat_ms: u64,
    pub node_ttl_ms: u64,
    pub gather_timeout_ms: u64,
    pub gap_timeout_ms: u64,
    pub reconnect_max_backoff_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    pub events: Vec<String>,
}

/// The audit event kinds the server knows.
pub const AUDIT_KINDS: &[&str] = &[
    "connect",
    "disconnect",
    "kick",
    "notify",
    "broadcast",
    "join",
    "leave",
    "rate_limited",
    "slow_consumer",
    "error",
];

/// The contract's short variables and the key each one sets.
const SHORT_VARS: &[(&str, &str, &str)] = &[
    ("REALTIME_HOST", "server", "host"),
    ("REALTIME_PORT", "server", "port"),
    ("REALTIME_NODE_ID", "server", "node_id"),
    ("REALTIME_JWT_SECRET", "auth", "jwt_secret"),
    ("REALTIME_JWT_PUBLIC_KEY", "auth", "jwt_public_key"),
    ("REALTIME_ADMIN_TOKEN", "auth", "admin_token"),
    ("DATABASE_URL", "database", "url"),
    ("REDIS_URL", "redis", "url"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error(
        "environment variable {0} does not name a section and key (REALTIME__<SECTION>__<KEY>)"
    )]
    BadVariable(String),
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
        let local = Path::new("config/default.toml");
        let mut table = match std::fs::read_to_string(local) {
            Ok(text) => parse(&text, "config/default.toml")?,
            Err(_) => parse(DEFAULT_TOML, "built-in config/default.toml")?,
        };
        if let Some((_, path)) = vars.iter().find(|(k, _)| k == "REALTIME_CONFIG") {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            merge(&mut table, parse(&text, path)?);
        }
        for (key, value) in vars {
            if let Some(rest) = key.strip_prefix("REALTIME__") {
                let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
                if path.len() < 2 || path.iter().any(String::is_empty) {
                    return Err(ConfigError::BadVariable(key.clone()));
                }
                set(&mut table, &path, env_value(value));
            }
        }
        for (var, section, key) in SHORT_VARS {
            if let Some((_, value)) = vars.iter().find(|(k, _)| k == var) {
                let value = if *key == "port" {
                    env_value(value)
                } else {
                    Value::String(value.clone())
                };
                set(&mut table, &[section.to_string(), key.to_string()], value);
            }
        }
        let settings: Settings = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("heartbeat.interval_ms", self.heartbeat.interval_ms as usize),
            ("heartbeat.timeout_ms", self.heartbeat.timeout_ms as usize),
            ("typing.timeout_ms", self.typing.timeout_ms as usize),
            ("limits.max_frame_bytes", self.limits.max_frame_bytes),
            ("mailbox.session", self.mailbox.session),
            ("mailbox.registry", self.mailbox.registry),
            ("mailbox.presence", self.mailbox.presence),
            ("database.pool_size", self.database.pool_size),
            ("mailbox.redis", self.mailbox.redis),
            ("redis.pool_size", self.redis.pool_size),
            ("redis.heartbeat_ms", self.redis.heartbeat_ms as usize),
            ("database.timeout_ms", self.database.timeout_ms as usize),
            ("database.batch_max", self.database.batch_max),
            ("database.write_queue", self.database.write_queue),
            ("database.background_queue", self.database.background_queue),
            (
                "rate_limits.commands_per_second",
                self.rate_limits.commands_per_second as usize,
            ),
            (
                "rate_limits.connections_per_ip_per_second",
                self.rate_limits.connections_per_ip_per_second as usize,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be greater than 0"
                )));
            }
        }
        if let Some(kind) = self
            .audit
            .events
            .iter()
            .find(|k| !AUDIT_KINDS.contains(&k.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "audit.events: unknown kind {kind:?} (known: {})",
                AUDIT_KINDS.join(", ")
            )));
        }
        if self.redis.node_ttl_ms <= self.redis.heartbeat_ms {
            return Err(ConfigError::Invalid(
                "redis.node_ttl_ms must be longer than redis.heartbeat_ms".into(),
            ));
        }
        if self.heartbeat.timeout_ms <= self.heartbeat.interval_ms {
            return Err(ConfigError::Invalid(
                "heartbeat.timeout_ms must be longer than heartbeat.interval_ms".into(),
            ));
        }
        Ok(())
    }
}

fn parse(text: &str, path: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|source| ConfigError::Parse {
        path: path.to_string(),
        source,
    })
}

/// Overlays `top` on `base`, table by table.
fn merge(base: &mut Table, top: Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn set(table: &mut Table, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("path has at least two parts");
    let mut cur = table;
    for part in parents {
        let entry = cur
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        cur = entry.as_table_mut().expect("just made a table");
    }
    cur.insert(last.clone(), value);
}

/// An environment value is TOML when it parses as a TOML value, else a string.
fn env_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_with_an_empty_environment() {
        let s = Settings::load_from(&[]).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.heartbeat.interval_ms, 25000);
        assert_eq!(s.server.environment, Environment::Development);
        assert!(s.auth.jwt_secret.is_empty());
    }

    #[test]
    fn environment_overrides_nested_keys_and_short_names() {
        let s = Settings::load_from(&vars(&[
            ("REALTIME__LIMITS__MAX_FRAME_BYTES", "1234"),
            ("REALTIME__ROOMS__PUBLIC", r#"["a", "b:*"]"#),
            ("REALTIME__SERVER__ENVIRONMENT", "production"),
            ("REALTIME_PORT", "9001"),
            ("REALTIME_JWT_SECRET", "123"),
            ("DATABASE_URL", "postgres://db/x"),
        ]))
        .unwrap();
        assert_eq!(s.limits.max_frame_bytes, 1234);
        assert_eq!(s.rooms.public, vec!["a", "b:*"]);
        assert_eq!(s.server.environment, Environment::Production);
        assert_eq!(s.server.port, 9001);
        // A numeric-looking secret stays a string.
        assert_eq!(s.auth.jwt_secret, "123");
        assert_eq!(s.database.url, "postgres://db/x");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = Settings::load_from(&vars(&[("REALTIME__LIMITS__MAX_FRAME_BYTEZ", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_frame_bytez"), "{err}");
        let err = Settings::load_from(&vars(&[("REALTIME_PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid"), "{err}");
        assert!(Settings::load_from(&vars(&[("REALTIME__MAILBOX__SESSION", "0")])).is_err());
        assert!(
            Settings::load_from(&vars(&[("REALTIME__AUDIT__EVENTS", r#"["conect"]"#)])).is_err()
        );
    }

    #[test]
    fn config_file_overlays_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[typing]\ntimeout_ms = 42\n[rooms.max_users]\n\"dm:*\" = 2\n",
        )
        .unwrap();
        let s = Settings::load_from(&vars(&[("REALTIME_CONFIG", path.to_str().unwrap())])).unwrap();
        assert_eq!(s.typing.timeout_ms, 42);
        assert_eq!(s.rooms.max_users.get("dm:*"), Some(&2));
        assert_eq!(s.heartbeat.interval_ms, 25000);
    }
}
