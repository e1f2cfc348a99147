//! Environment variables that look meant for the server but set nothing:
//! `REALTIME_JWT_SECRETS` (a typo of a short variable),
//! `REALTIME_SERVER__PORT` (one underscore short of a section variable),
//! `DATABASE_URI`. Each would leave a setting at its default without a
//! word; the server warns at start-up instead, and refuses to start in
//! production. (`REALTIME__<SECTION>__<KEY>` variables need no check here:
//! an unknown key among them is already an error.)

use super::sources::SHORT_VARS;

/// Variables of the server's own tooling, not settings: the file of
/// settings, and the test harness's (`REALTIME_TEST_*`).
const OTHER_KNOWN: &[&str] = &["REALTIME_CONFIG"];
const TOOLING_PREFIX: &str = "REALTIME_TEST_";

/// One line per suspicious variable, saying what it is probably meant to be.
pub fn suspicious(vars: &[(String, String)]) -> Vec<String> {
    let known: Vec<&str> = SHORT_VARS
        .iter()
        .map(|(name, ..)| *name)
        .chain(OTHER_KNOWN.iter().copied())
        .collect();
    let mut found = Vec::new();
    for (name, _) in vars {
        if known.contains(&name.as_str())
            || name.starts_with("REALTIME__")
            || name.starts_with(TOOLING_PREFIX)
        {
            continue;
        }
        let ours = name.to_ascii_uppercase().starts_with("REALTIME");
        let nearest = known
            .iter()
            .map(|k| (distance(name, k), *k))
            .min()
            .filter(|(d, k)| *d <= if ours { 3 } else { 2.min(k.len() / 4) });
        let line = if let Some(section) = one_underscore_short(name) {
            format!("{name} sets nothing; did you mean {section}? (sections take two underscores: REALTIME__<SECTION>__<KEY>)")
        } else if let Some((_, k)) = nearest {
            format!("{name} sets nothing; did you mean {k}?")
        } else if ours {
            format!(
                "{name} sets nothing: settings are REALTIME__<SECTION>__<KEY> or one of {}",
                known.join(", ")
            )
        } else {
            continue;
        };
        found.push(line);
    }
    found.sort();
    found
}

/// `REALTIME_SERVER__PORT` → `REALTIME__SERVER__PORT`.
fn one_underscore_short(name: &str) -> Option<String> {
    let rest = name.strip_prefix("REALTIME_")?;
    (!rest.starts_with('_') && rest.contains("__")).then(|| format!("REALTIME__{rest}"))
}

/// Levenshtein distance, case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (
        a.to_ascii_uppercase().chars().collect(),
        b.to_ascii_uppercase().chars().collect(),
    );
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(names: &[&str]) -> Vec<String> {
        let vars: Vec<(String, String)> =
            names.iter().map(|n| (n.to_string(), "x".into())).collect();
        suspicious(&vars)
    }

    #[test]
    fn typos_of_short_variables_are_named_with_the_right_one() {
        assert_eq!(
            check(&["REALTIME_JWT_SECRETS"]),
            ["REALTIME_JWT_SECRETS sets nothing; did you mean REALTIME_JWT_SECRET?"]
        );
        assert_eq!(
            check(&["DATABASE_URI", "REDIS_ULR"]),
            [
                "DATABASE_URI sets nothing; did you mean DATABASE_URL?",
                "REDIS_ULR sets nothing; did you mean REDIS_URL?"
            ]
        );
    }

    #[test]
    fn a_section_variable_with_one_underscore_is_caught() {
        assert_eq!(
            check(&["REALTIME_SERVER__PORT"]),
            ["REALTIME_SERVER__PORT sets nothing; did you mean REALTIME__SERVER__PORT? (sections take two underscores: REALTIME__<SECTION>__<KEY>)"]
        );
    }

    #[test]
    fn known_and_unrelated_variables_pass() {
        assert!(check(&[
            "REALTIME_PORT",
            "REALTIME_CONFIG",
            "REALTIME__SERVER__PORT",
            "REALTIME_TEST_TIME_SCALE",
            "DATABASE_URL",
            "PATH",
            "HOME",
            "RUST_LOG",
            "REDIS_PORT_6379_TCP",
            "USER",
        ])
        .is_empty());
        let other = check(&["REALTIME_WHATEVER_ELSE_ENTIRELY"]);
        assert_eq!(other.len(), 1);
        assert!(other[0].contains("REALTIME__<SECTION>__<KEY>"), "{other:?}");
    }

    #[test]
    fn distances_are_levenshtein() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("REDIS_URL", "redis_url"), 0);
        assert_eq!(distance("", "abc"), 3);
    }
}
