//! JWT checks, the admin key, and room access patterns.
//!
//! The algorithm is pinned from config (HS256 with a secret, or RS256/ES256
//! with a public key), so a token cannot choose its own: `alg: none` and
//! HS/RS confusion are refused by the library before any claim is read.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::config::{AuthSettings, Environment};
use crate::revocation::{Refusal, Revocations};

/// The secret used when none is configured. Public on purpose: a server
/// running with it accepts tokens anyone can mint.
pub const INSECURE_DEV_SECRET: &str = "insecure-development-secret-do-not-use-in-production";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Token id: lets one token be revoked (`POST /admin/revoke {"jti"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// What announcements target (`targetRoles`); unrelated to `role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// The `aud` claim: RFC 7519 allows one string or an array of them (many
/// identity providers send an array). The configured audience must be one of
/// them; the check itself is `jsonwebtoken`'s.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Shortest HS256 secret accepted in production: RFC 7518 §3.2 asks for a key
/// at least as long as the hash (256 bits); a shorter one can be brute-forced
/// from any token.
pub const MIN_SECRET_BYTES: usize = 32;

/// Characters refused in a user id (`sub`): control characters and the
/// invisible "format" characters (Unicode category Cf: zero-width spaces and
/// joiners, bidirectional overrides and isolates, the BOM, ...) plus the
/// invisible fillers, which let one id look like another in member lists and
/// logs.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180E}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{0890}'..='\u{0891}'
            | '\u{08E2}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Characters refused in a display name: control characters and the
/// bidirectional controls that reorder the text around them (zero-width
/// joiners stay allowed: emoji sequences need them).
fn reorders_text(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `user_id` is acceptable as a user id: non-empty, nothing invisible.
pub fn valid_user_id(user_id: &str) -> bool {
    !user_id.is_empty() && !user_id.chars().any(is_invisible)
}

/// Who is on the other end of a connection, from their token.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: Arc<str>,
    pub name: Option<Arc<str>>,
    pub rooms: Vec<String>,
    /// The token's `roles` claim: which announcements reach this user.
    pub roles: Vec<String>,
    pub admin: bool,
    /// Unix seconds; `None` for anonymous users.
    pub expires_at: Option<u64>,
}

impl Identity {
    pub fn from_claims(claims: Claims) -> Self {
        Identity {
            admin: claims.role.as_deref() == Some("admin"),
            user_id: claims.sub.into(),
            name: claims.name.map(Into::into),
            rooms: claims.rooms.unwrap_or_default(),
            roles: claims.roles.unwrap_or_default(),
            expires_at: Some(claims.exp),
        }
    }

    pub fn anonymous(connection_id: &str) -> Self {
        Identity {
            user_id: format!("anon:{connection_id}").into(),
            name: None,
            rooms: Vec::new(),
            roles: Vec::new(),
            admin: false,
            expires_at: None,
        }
    }

    /// The room that receives this user's notifications.
    pub fn personal_room(&self) -> String {
        personal_room(&self.user_id)
    }

    /// Whether this user may join (and read) `room`.
    /// Another user's personal room is for admins only, whatever the
    /// patterns say: it carries that user's notifications.
    pub fn may_access(&self, room: &str, public: &[String]) -> bool {
        if self.admin || room == self.personal_room() {
            return true;
        }
        if room.starts_with(PERSONAL_PREFIX) {
            return false;
        }
        public.iter().any(|p| pattern_matches(p, room))
            || self.rooms.iter().any(|p| pattern_matches(p, room))
    }
}

/// Personal rooms are `user:<sub>`.
pub const PERSONAL_PREFIX: &str = "user:";

pub fn personal_room(user_id: &str) -> String {
    format!("{PERSONAL_PREFIX}{user_id}")
}

/// `*` is a wildcard only as the last character: `team:42:*` matches
/// `team:42:general`; `*` alone matches every room.
pub fn pattern_matches(pattern: &str, room: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => pattern == room,
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("missing token: send `Authorization: Bearer <jwt>` or the `token` query parameter")]
    Missing,
    #[error("token has expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Refused by a revocation (see [`crate::revocation`]).
    #[error("{0}")]
    Revoked(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("cannot read JWT public key {path}: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error("JWT public key {path} is not a valid {alg} PEM key: {source}")]
    BadKey {
        path: String,
        alg: String,
        source: jsonwebtoken::errors::Error,
    },
    #[error("auth.public_key_algorithm must be RS256 or ES256, not {0:?}")]
    BadAlgorithm(String),
    #[error("no JWT key is configured (REALTIME_JWT_SECRET or REALTIME_JWT_PUBLIC_KEY) and server.environment is production: refusing to start in insecure development mode")]
    InsecureInProduction,
    #[error("set only one of auth.jwt_secret and auth.jwt_public_key")]
    BothKeys,
    #[error("the JWT secret is {0} bytes long; server.environment is production, which needs at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`)")]
    WeakSecret(usize),
}

/// Verifies tokens (and mints them, when the key is a shared secret).
pub struct Auth {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    algorithm: Algorithm,
    validation: Validation,
    admin_token: Option<Vec<u8>>,
    insecure: bool,
    revocations: Arc<Revocations>,
}

impl Auth {
    pub fn from_settings(s: &AuthSettings, env: Environment) -> Result<Self, AuthConfigError> {
        let (decoding, encoding, algorithm, insecure) = match (
            s.jwt_secret.is_empty(),
            s.jwt_public_key.is_empty(),
        ) {
            (false, false) => return Err(AuthConfigError::BothKeys),
            (false, true) => {
                let len = s.jwt_secret.len();
                if len < MIN_SECRET_BYTES {
                    if env == Environment::Production {
                        return Err(AuthConfigError::WeakSecret(len));
                    }
                    log::warn!(
                            "the JWT secret is only {len} bytes long: use at least {MIN_SECRET_BYTES} (production refuses shorter ones)"
                        );
                }
                (
                    DecodingKey::from_secret(s.jwt_secret.as_bytes()),
                    Some(EncodingKey::from_secret(s.jwt_secret.as_bytes())),
                    Algorithm::HS256,
                    false,
                )
            }
            (true, false) => {
                let path = &s.jwt_public_key;
                let pem = std::fs::read(path).map_err(|source| AuthConfigError::ReadKey {
                    path: path.clone(),
                    source,
                })?;
                let (key, alg) = match s.public_key_algorithm.as_str() {
                    "RS256" => (DecodingKey::from_rsa_pem(&pem), Algorithm::RS256),
                    "ES256" => (DecodingKey::from_ec_pem(&pem), Algorithm::ES256),
                    other => return Err(AuthConfigError::BadAlgorithm(other.to_string())),
                };
                let key = key.map_err(|source| AuthConfigError::BadKey {
                    path: path.clone(),
                    alg: s.public_key_algorithm.clone(),
                    source,
                })?;
                (key, None, alg, false)
            }
            (true, true) => {
                if env == Environment::Production {
                    return Err(AuthConfigError::InsecureInProduction);
                }
                (
                    DecodingKey::from_secret(INSECURE_DEV_SECRET.as_bytes()),
                    Some(EncodingKey::from_secret(INSECURE_DEV_SECRET.as_bytes())),
                    Algorithm::HS256,
                    true,
                )
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = s.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if !s.issuer.is_empty() {
            validation.set_issuer(&[&s.issuer]);
            required.push("iss");
        }
        if s.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&s.audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(Auth {
            decoding,
            encoding,
            algorithm,
            validation,
            admin_token: (!s.admin_token.is_empty()).then(|| s.admin_token.as_bytes().to_vec()),
            insecure,
            revocations: Arc::default(),
        })
    }

    /// Seconds of clock skew tolerated after `exp`.
    pub fn leeway_secs(&self) -> u64 {
        self.validation.leeway
    }

    /// The revoked tokens [`verify`](Self::verify) refuses.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// True when running on the well-known development secret.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => {
                    AuthError::Invalid("token is not valid yet (nbf)".into())
                }
                ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience (aud)".into()),
                ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer (iss)".into()),
                ErrorKind::InvalidAlgorithm => AuthError::Invalid("algorithm not accepted".into()),
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::Invalid(format!("missing claim `{c}`"))
                }
                _ => AuthError::Invalid("malformed token".into()),
            })?;
        if !valid_user_id(&claims.sub) {
            return Err(AuthError::Invalid(
                "`sub` must be non-empty text without control or invisible characters".into(),
            ));
        }
        if claims
            .name
            .as_deref()
            .is_some_and(|n| n.chars().any(reorders_text))
        {
            return Err(AuthError::Invalid(
                "`name` must be text without control or bidirectional-control characters".into(),
            ));
        }
        if let Some(refusal) = self.revocations.refusal(&claims, now_secs()) {
            return Err(AuthError::Revoked(refused_because(refusal)));
        }
        Ok(claims)
    }

    /// Signs `claims` with the configured secret (HS256 only: with a public
    /// key the server cannot sign, tokens come from your auth service).
    pub fn mint(&self, claims: &Claims) -> Result<String, String> {
        let key = self.encoding.as_ref().ok_or_else(|| {
            "the server is configured with a public key (REALTIME_JWT_PUBLIC_KEY) and cannot sign tokens; issue them with the matching private key".to_string()
        })?;
        encode(&Header::new(self.algorithm), claims, key).map_err(|e| e.to_string())
    }

    /// Compares `token` with the configured admin key in constant time.
    pub fn is_admin_key(&self, token: &str) -> bool {
        match &self.admin_token {
            Some(key) => key.as_slice().ct_eq(token.as_bytes()).into(),
            None => false,
        }
    }
}

/// The refusal's text, as the client sees it.
fn refused_because(refusal: Refusal) -> String {
    match refusal {
        Refusal::Revoked => "token revoked: issued before its user's tokens were revoked".into(),
        Refusal::TokenRevoked => "token revoked (jti)".into(),
        Refusal::Banned(until) => {
            let until = chrono::DateTime::from_timestamp(until as i64, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            format!("token revoked: this user is banned until {until}")
        }
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings() -> AuthSettings {
        let mut s = Settings::load_from(&[]).unwrap().auth;
        s.jwt_secret = "unit-test-secret-of-at-least-32-bytes".into();
        s
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            exp,
            iat: None,
            jti: None,
            name: Some("Alice".into()),
            rooms: Some(vec!["team:1:*".into()]),
            role: None,
            iss: None,
            roles: None,
            aud: None,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let auth = Auth::from_settings(&settings(), Environment::Production).unwrap();
        let token = auth.mint(&claims(now_secs() + 60)).unwrap();
        assert_eq!(auth.verify(&token).unwrap().sub, "alice");
        let old = auth.mint(&claims(now_secs() - 120)).unwrap();
        assert_eq!(auth.verify(&old), Err(AuthError::Expired));
    }

    #[test]
    fn wrong_key_none_alg_and_garbage_are_refused() {
        let auth = Auth::from_settings(&settings(), Environment::Production).unwrap();
        let mut other = settings();
        other.jwt_secret = "another-secret-of-at-least-32-bytes".into();
        let other = Auth::from_settings(&other, Environment::Production).unwrap();
        let forged = other.mint(&claims(now_secs() + 60)).unwrap();
        assert!(matches!(auth.verify(&forged), Err(AuthError::Invalid(_))));
        // {"alg":"none","typ":"JWT"} . {"sub":"alice","exp":9999999999} . (empty)
        let none =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(matches!(auth.verify(none), Err(AuthError::Invalid(_))));
        assert!(matches!(auth.verify("garbage"), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn not_yet_valid_tokens_are_refused() {
        #[derive(serde::Serialize)]
        struct WithNbf {
            sub: String,
            exp: u64,
            nbf: u64,
        }
        let auth = Auth::from_settings(&settings(), Environment::Production).unwrap();
        let key = EncodingKey::from_secret(settings().jwt_secret.as_bytes());
        let early = WithNbf {
            sub: "alice".into(),
            exp: now_secs() + 600,
            nbf: now_secs() + 300,
        };
        let token = encode(&Header::new(Algorithm::HS256), &early, &key).unwrap();
        assert_eq!(
            auth.verify(&token),
            Err(AuthError::Invalid("token is not valid yet (nbf)".into()))
        );
        let empty_sub = WithNbf {
            sub: String::new(),
            exp: now_secs() + 600,
            nbf: 0,
        };
        let token = encode(&Header::new(Algorithm::HS256), &empty_sub, &key).unwrap();
        assert!(auth.verify(&token).is_err());
    }

    #[test]
    fn audience_and_issuer_are_checked_when_configured() {
        let mut s = settings();
        s.audience = "chat".into();
        s.issuer = "https://auth".into();
        let auth = Auth::from_settings(&s, Environment::Production).unwrap();
        let mut c = claims(now_secs() + 60);
        assert!(auth.verify(&auth.mint(&c).unwrap()).is_err());
        c.aud = Some(Audience::One("chat".into()));
        c.iss = Some("https://auth".into());
        assert!(auth.verify(&auth.mint(&c).unwrap()).is_ok());
        // RFC 7519 §4.1.3: an array that contains the audience is accepted too
        c.aud = Some(Audience::Many(vec!["api".into(), "chat".into()]));
        assert!(auth.verify(&auth.mint(&c).unwrap()).is_ok());
        for wrong in [
            Audience::One("other".into()),
            Audience::Many(vec!["api".into(), "other".into()]),
            Audience::Many(vec![]),
        ] {
            c.aud = Some(wrong);
            assert_eq!(
                auth.verify(&auth.mint(&c).unwrap()),
                Err(AuthError::Invalid("wrong audience (aud)".into()))
            );
        }
    }

    #[test]
    fn production_refuses_short_secrets() {
        let mut s = settings();
        s.jwt_secret = "x".repeat(MIN_SECRET_BYTES - 1);
        assert!(matches!(
            Auth::from_settings(&s, Environment::Production),
            Err(AuthConfigError::WeakSecret(31))
        ));
        assert!(Auth::from_settings(&s, Environment::Development).is_ok());
        s.jwt_secret = "x".repeat(MIN_SECRET_BYTES);
        assert!(Auth::from_settings(&s, Environment::Production).is_ok());
    }

    #[test]
    fn invisible_characters_are_refused_in_user_ids() {
        for bad in [
            "",
            "a\u{0}b",
            "ad\u{200B}min",
            "\u{202E}nimda",
            "a\u{2066}b",
            "\u{FEFF}bob",
            "a\u{AD}b",
            "x\u{E0041}",
            "\u{3164}",
        ] {
            assert!(!valid_user_id(bad), "{bad:?}");
        }
        for good in ["alice", "Zoë", "user@example.com", "李雷", "anon:123"] {
            assert!(valid_user_id(good), "{good:?}");
        }
        let auth = Auth::from_settings(&settings(), Environment::Production).unwrap();
        let mut c = claims(now_secs() + 60);
        c.sub = "ad\u{200B}min".into();
        assert!(matches!(
            auth.verify(&auth.mint(&c).unwrap()),
            Err(AuthError::Invalid(_))
        ));
        c.sub = "alice".into();
        c.name = Some("evil\u{202E}gnp.exe".into());
        assert!(matches!(
            auth.verify(&auth.mint(&c).unwrap()),
            Err(AuthError::Invalid(_))
        ));
        // a zero-width joiner inside an emoji sequence is fine in a name
        c.name = Some("Ann \u{1F469}\u{200D}\u{1F4BB}".into());
        assert!(auth.verify(&auth.mint(&c).unwrap()).is_ok());
    }

    #[test]
    fn insecure_mode_only_outside_production() {
        let mut s = settings();
        s.jwt_secret.clear();
        assert!(Auth::from_settings(&s, Environment::Development)
            .unwrap()
            .is_insecure());
        assert!(matches!(
            Auth::from_settings(&s, Environment::Production),
            Err(AuthConfigError::InsecureInProduction)
        ));
    }

    #[test]
    fn admin_key_comparison() {
        let mut s = settings();
        assert!(!Auth::from_settings(&s, Environment::Production)
            .unwrap()
            .is_admin_key(""));
        s.admin_token = "k3y".into();
        let auth = Auth::from_settings(&s, Environment::Production).unwrap();
        assert!(auth.is_admin_key("k3y"));
        assert!(!auth.is_admin_key("k3"));
        assert!(!auth.is_admin_key("k3yy"));
    }

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn sign(alg: Algorithm, key: &EncodingKey) -> String {
        encode(&Header::new(alg), &claims(now_secs() + 60), key).unwrap()
    }

    #[test]
    fn public_keys_pin_their_algorithm() {
        let mut s = settings();
        s.jwt_secret.clear();
        s.jwt_public_key = fixture("rsa_public.pem");
        let rsa = Auth::from_settings(&s, Environment::Production).unwrap();
        let rsa_private = std::fs::read(fixture("rsa_private.pem")).unwrap();
        let rsa_key = EncodingKey::from_rsa_pem(&rsa_private).unwrap();
        assert_eq!(
            rsa.verify(&sign(Algorithm::RS256, &rsa_key)).unwrap().sub,
            "alice"
        );
        // RS512 with the right key is still refused: the algorithm is pinned.
        assert!(rsa.verify(&sign(Algorithm::RS512, &rsa_key)).is_err());
        // HS/RS confusion: an HS256 token "signed" with the public key's bytes.
        let public_pem = std::fs::read(fixture("rsa_public.pem")).unwrap();
        let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(&public_pem));
        assert_eq!(
            rsa.verify(&confused),
            Err(AuthError::Invalid("algorithm not accepted".into()))
        );
        assert!(
            rsa.mint(&claims(now_secs() + 60)).is_err(),
            "cannot sign with a public key"
        );

        s.jwt_public_key = fixture("ec_public.pem");
        s.public_key_algorithm = "ES256".into();
        let ec = Auth::from_settings(&s, Environment::Production).unwrap();
        let ec_private = std::fs::read(fixture("ec_private.pem")).unwrap();
        let ec_key = EncodingKey::from_ec_pem(&ec_private).unwrap();
        assert_eq!(
            ec.verify(&sign(Algorithm::ES256, &ec_key)).unwrap().sub,
            "alice"
        );
        assert!(ec.verify(&sign(Algorithm::RS256, &rsa_key)).is_err());

        s.public_key_algorithm = "HS256".into();
        assert!(matches!(
            Auth::from_settings(&s, Environment::Production),
            Err(AuthConfigError::BadAlgorithm(_))
        ));
        s.jwt_secret = "x".into();
        assert!(matches!(
            Auth::from_settings(&s, Environment::Production),
            Err(AuthConfigError::BothKeys)
        ));
    }

    #[test]
    fn room_patterns() {
        assert!(pattern_matches("team:42:*", "team:42:general"));
        assert!(!pattern_matches("team:42:*", "team:421"));
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("lobby", "lobby"));
        assert!(!pattern_matches("lobby", "lobby2"));
        let id = Identity::from_claims(claims(1));
        let public = vec!["lobby".to_string()];
        assert!(id.may_access("lobby", &public));
        assert!(id.may_access("team:1:x", &public));
        assert!(id.may_access("user:alice", &public));
        assert!(!id.may_access("user:bob", &public));
        assert!(!id.may_access("team:2:x", &public));
        let mut everything = Identity::from_claims(claims(1));
        everything.rooms = vec!["*".into(), "user:*".into()];
        assert!(everything.may_access("anything", &public));
        assert!(
            !everything.may_access("user:bob", &public),
            "others' personal rooms stay private"
        );
        everything.admin = true;
        assert!(everything.may_access("user:bob", &public));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::pattern_matches;

    proptest! {
        /// `prefix*` matches exactly the rooms that start with `prefix`.
        #[test]
        fn trailing_wildcard_is_a_prefix(prefix in "[a-z:]{0,10}", room in "[a-z:]{0,12}") {
            let pattern = format!("{prefix}*");
            prop_assert_eq!(pattern_matches(&pattern, &room), room.starts_with(&prefix));
        }

        /// Without a wildcard, a pattern matches only itself.
        #[test]
        fn plain_patterns_match_only_themselves(pattern in "[a-z:]{1,10}", room in "[a-z:]{1,10}") {
            prop_assert_eq!(pattern_matches(&pattern, &room), pattern == room);
        }
    }
}
