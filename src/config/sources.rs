//! The configuration's layers as `figment` providers, and error messages
//! that say which layer set a bad value.
//!
//! The environment comes in as a list of pairs rather than through figment's
//! own `Env`, so that `Settings::load_from` (and every test) can stand in for
//! the process environment without changing it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use figment::error::Kind;
use figment::providers::{Data, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::{ConfigError, DEFAULT_TOML};

/// The working directory's copy of the defaults, read instead of the
/// built-in one when present.
const LOCAL_DEFAULTS: &str = "config/default.toml";

/// What errors call a value that came from the environment.
const VARIABLE: &str = "environment variable";

/// The contract's short variables and the key each one sets.
pub(super) const SHORT_VARS: &[(&str, &str, &str)] = &[
    ("REALTIME_HOST", "server", "host"),
    ("REALTIME_PORT", "server", "port"),
    ("REALTIME_NODE_ID", "server", "node_id"),
    ("REALTIME_JWT_SECRET", "auth", "jwt_secret"),
    ("REALTIME_JWT_PUBLIC_KEY", "auth", "jwt_public_key"),
    ("REALTIME_ADMIN_TOKEN", "auth", "admin_token"),
    ("DATABASE_URL", "database", "url"),
    ("REDIS_URL", "redis", "url"),
];

/// Every layer, lowest first; a later one wins key by key.
pub(super) fn layers(vars: &[(String, String)]) -> Result<Figment, ConfigError> {
    let defaults = if Path::new(LOCAL_DEFAULTS).is_file() {
        TomlLayer::file("defaults file", LOCAL_DEFAULTS)
    } else {
        TomlLayer {
            data: Toml::string(DEFAULT_TOML),
            metadata: Metadata::named("built-in config/default.toml"),
        }
    };
    let mut layers = Figment::from(defaults);
    if let Some((_, path)) = vars.iter().find(|(k, _)| k == "REALTIME_CONFIG") {
        layers = layers.merge(TomlLayer::file("REALTIME_CONFIG file", path));
    }
    Ok(layers
        .merge(EnvLayer::sections(vars)?)
        .merge(EnvLayer::short(vars)))
}

/// A TOML file (or the built-in text) under the name errors give it.
struct TomlLayer {
    data: Data<Toml>,
    metadata: Metadata,
}

impl TomlLayer {
    fn file(name: &'static str, path: &str) -> Self {
        TomlLayer {
            // Read where it is named, not searched for in parent directories;
            // a missing file is an error.
            data: Toml::file_exact(path),
            // Shown as given, not relative to the working directory.
            metadata: Metadata::from(name, path.to_string()),
        }
    }
}

impl Provider for TomlLayer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.data.data()
    }
}

/// Environment variables as one layer. `names` maps each key path back to
/// the variable that set it, so that an error names the variable.
#[derive(Default)]
struct EnvLayer {
    dict: Dict,
    names: BTreeMap<Vec<String>, String>,
}

impl EnvLayer {
    /// The `REALTIME__<SECTION>__<KEY>` variables (deeper paths reach into
    /// tables: `REALTIME__ROOMS__MAX_USERS__SUPPORT`).
    fn sections(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut layer = EnvLayer::default();
        for (name, raw) in vars {
            let Some(rest) = name.strip_prefix("REALTIME__") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.len() < 2 || path.iter().any(String::is_empty) {
                return Err(ConfigError::BadVariable(name.clone()));
            }
            layer.set(path, name, section_value(raw));
        }
        Ok(layer)
    }

    /// The short variables, taken as written: a secret that looks like a
    /// number or a TOML array is still the secret.
    fn short(vars: &[(String, String)]) -> Self {
        let mut layer = EnvLayer::default();
        for (name, section, key) in SHORT_VARS {
            if let Some((_, raw)) = vars.iter().find(|(k, _)| k == name) {
                let path = vec![section.to_string(), key.to_string()];
                layer.set(path, name, Value::from(raw.as_str()));
            }
        }
        layer
    }

    fn set(&mut self, path: Vec<String>, name: &str, value: Value) {
        let (last, parents) = path.split_last().expect("a section and a key");
        let mut dict = &mut self.dict;
        for part in parents {
            let entry = dict
                .entry(part.clone())
                .or_insert_with(|| Dict::new().into());
            if entry.as_dict().is_none() {
                *entry = Dict::new().into();
            }
            dict = match entry {
                Value::Dict(_, inner) => inner,
                _ => unreachable!("just made a table"),
            };
        }
        dict.insert(last.clone(), value);
        self.names.insert(path, name.to_string());
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        let names = Arc::new(self.names.clone());
        Metadata::named(VARIABLE)
            .interpolater(move |_: &Profile, path: &[&str]| variable_for(&names, path))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.dict.clone())]))
    }
}

/// A `REALTIME__` value that opens like a TOML array, inline table or quoted
/// string is read as TOML (`["a", "b"]`, `{ "dm:*" = 2 }`, `"x"`); any other
/// is the text as written, which extraction turns into a number or boolean
/// where the key is one. A list key also splits text on commas.
fn section_value(raw: &str) -> Value {
    if raw.trim_start().starts_with(['[', '{', '"']) {
        if let Ok(mut parsed) = Toml::from_str::<Dict>(&format!("v = {raw}")) {
            if let Some(value) = parsed.remove("v") {
                return value;
            }
        }
    }
    Value::from(raw)
}

/// The variable that set `path`, a table above it (a list item's error names
/// the list's variable), or a key below it (an unknown section's error).
fn variable_for(names: &BTreeMap<Vec<String>, String>, path: &[&str]) -> String {
    let above = names
        .iter()
        .filter(|(key, _)| key.len() <= path.len() && key.iter().zip(path).all(|(a, b)| a == b))
        .max_by_key(|(key, _)| key.len());
    let below = || {
        names
            .iter()
            .find(|(key, _)| key.len() > path.len() && key.iter().zip(path).all(|(a, b)| a == b))
    };
    match above.or_else(below) {
        Some((_, name)) => name.clone(),
        None => format!("REALTIME__{}", path.join("__").to_ascii_uppercase()),
    }
}

/// Where the value at `path` came from: a variable's name, a file's path.
pub(super) fn origin<K: AsRef<str>>(metadata: &Metadata, path: &[K]) -> String {
    if metadata.name == VARIABLE {
        format!(
            "{VARIABLE} {}",
            metadata.interpolate(&Profile::Default, path)
        )
    } else if let Some(source) = &metadata.source {
        format!("{} {source}", metadata.name)
    } else {
        metadata.name.to_string()
    }
}

/// ` (from <layer>)` for the layer that set `key` (`section.key`), if any.
pub(super) fn set_by(layers: &Figment, key: &str) -> String {
    let path: Vec<&str> = key.split('.').collect();
    layers
        .find_metadata(key)
        .map(|metadata| format!(" (from {})", origin(metadata, &path)))
        .unwrap_or_default()
}

/// An extraction error as one line per problem, each naming the key as
/// `section.key` and the layer that set it.
pub(super) fn describe(error: figment::Error) -> ConfigError {
    let problems: Vec<String> = error.into_iter().map(|e| describe_one(&e)).collect();
    ConfigError::Invalid(problems.join("\n"))
}

fn describe_one(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let from = error.metadata.as_ref().map(|md| origin(md, &error.path));
    match (&error.kind, from) {
        (Kind::UnknownField(_, known), from) => {
            let from = from.map(|f| format!(" (from {f})")).unwrap_or_default();
            format!("unknown key {key}{from}; known here: {}", known.join(", "))
        }
        // A layer that could not be read or parsed (TOML's message ends in
        // a newline).
        (kind, Some(from)) if key.is_empty() => format!("{from}: {}", trimmed(kind)),
        (kind, Some(from)) => format!("{key}: {} (from {from})", trimmed(kind)),
        (kind, None) if key.is_empty() => trimmed(kind),
        (kind, None) => format!("{key}: {}", trimmed(kind)),
    }
}

fn trimmed(kind: &Kind) -> String {
    kind.to_string().trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(&[&str], &str)]) -> BTreeMap<Vec<String>, String> {
        list.iter()
            .map(|(path, name)| {
                (
                    path.iter().map(|p| p.to_string()).collect(),
                    name.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn errors_name_the_variable_that_set_a_key_or_its_table() {
        let names = names(&[
            (&["server", "origins"], "REALTIME__SERVER__ORIGINS"),
            (&["nope", "key"], "REALTIME__Nope__KEY"),
        ]);
        assert_eq!(
            variable_for(&names, &["server", "origins"]),
            "REALTIME__SERVER__ORIGINS"
        );
        assert_eq!(
            variable_for(&names, &["server", "origins", "0"]),
            "REALTIME__SERVER__ORIGINS"
        );
        assert_eq!(variable_for(&names, &["nope"]), "REALTIME__Nope__KEY");
        assert_eq!(variable_for(&names, &["a", "b"]), "REALTIME__A__B");
    }

    #[test]
    fn section_values_are_toml_only_when_they_open_like_it() {
        assert_eq!(section_value(r#"["a", "b"]"#), Value::from(vec!["a", "b"]));
        assert_eq!(section_value(r#""quoted""#), Value::from("quoted"));
        assert_eq!(section_value("123"), Value::from("123"));
        assert_eq!(section_value("a,b"), Value::from("a,b"));
        // Not TOML after all: left as text for the key to judge.
        assert_eq!(section_value("[::1]"), Value::from("[::1]"));
    }
}
