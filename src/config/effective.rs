//! `realtime-server print-config`: the settings in force, as TOML, each
//! key with the layer that set it, secrets masked.

use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};

use super::{sources, ConfigError, DEFAULT_TOML};

/// Keys whose values are never printed.
const SECRETS: &[&str] = &["auth.jwt_secret", "auth.admin_token"];
/// Keys holding URLs whose password is masked.
const URLS: &[&str] = &["database.url", "redis.url"];

/// The effective settings with `vars` as the environment.
pub fn render(vars: &[(String, String)]) -> Result<String, ConfigError> {
    let layers = sources::layers(vars)?;
    let dict: Dict = layers.extract().map_err(sources::describe)?;
    // Environment values are text; shown as the type the key has.
    let defaults: Dict = figment::Figment::from(Toml::string(DEFAULT_TOML))
        .extract()
        .map_err(sources::describe)?;
    let mut out = String::new();
    for (section, value) in &dict {
        let Some(keys) = value.as_dict() else {
            continue;
        };
        out.push_str(&format!("[{section}]\n"));
        let lines: Vec<(String, String)> = keys
            .iter()
            .map(|(key, value)| {
                let path = format!("{section}.{key}");
                let default = defaults.get(section).and_then(|d| d.as_dict()?.get(key));
                let shown = format!("{key} = {}", masked(&path, &typed(value, default)));
                let from = layers
                    .find_metadata(&path)
                    .map(|m| sources::origin(m, &[section.as_str(), key.as_str()]))
                    .unwrap_or_default();
                (shown, from)
            })
            .collect();
        let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (line, from) in lines {
            out.push_str(&format!("{line:<width$}  # {from}\n"));
        }
        out.push('\n');
    }
    Ok(out)
}

/// A text value as the type of the key's default: a number, a boolean, or
/// a comma-separated list.
fn typed(value: &Value, default: Option<&Value>) -> Value {
    let (Some(text), Some(default)) = (value.as_str(), default) else {
        return value.clone();
    };
    let text = text.trim();
    match default {
        Value::Num(..) => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| value.clone()),
        Value::Bool(..) => text
            .parse::<bool>()
            .map(Value::from)
            .unwrap_or_else(|_| value.clone()),
        Value::Array(..) => Value::from(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>(),
        ),
        _ => value.clone(),
    }
}

fn masked(path: &str, value: &Value) -> String {
    let text = value.as_str();
    if SECRETS.contains(&path) {
        return match text {
            Some("") => "\"\"".into(),
            _ => "\"***\"".into(),
        };
    }
    if let (true, Some(url)) = (URLS.contains(&path), text) {
        return toml_value(&Value::from(crate::store::redact_url(url)));
    }
    toml_value(value)
}

/// A value as TOML writes it (strings quoted, arrays and tables inline).
fn toml_value(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_i128()
            .map(|i| i.to_string())
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_default(),
        Value::Empty(..) => "\"\"".into(),
        Value::Array(_, items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Dict(_, d) => {
            let items: Vec<String> = d
                .iter()
                .map(|(k, v)| format!("{k:?} = {}", toml_value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
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

    #[test]
    fn secrets_are_masked_and_each_key_names_its_layer() {
        let text = render(&vars(&[
            ("REALTIME_JWT_SECRET", "a-very-secret-secret-of-32-bytes!!"),
            ("REALTIME_PORT", "9001"),
            ("DATABASE_URL", "postgres://app:hunter2@db:5432/rt"),
            (
                "REALTIME__SERVER__ORIGINS",
                "https://a.example, https://b.example",
            ),
        ]))
        .unwrap();
        assert!(!text.contains("a-very-secret"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("jwt_secret = \"***\""), "{text}");
        assert!(
            text.contains("url = \"postgres://app:***@db:5432/rt\""),
            "{text}"
        );
        let port = text.lines().find(|l| l.starts_with("port = ")).unwrap();
        assert!(port.starts_with("port = 9001"), "{port}");
        assert!(
            port.ends_with("# environment variable REALTIME_PORT"),
            "{port}"
        );
        let host = text.lines().find(|l| l.starts_with("host = ")).unwrap();
        assert!(host.contains("config/default.toml"), "{host}");
        assert!(
            text.contains("[server]\n") && text.contains("[redis]\n"),
            "{text}"
        );
        assert!(
            text.contains("origins = [\"https://a.example\", \"https://b.example\"]"),
            "{text}"
        );
    }
}
