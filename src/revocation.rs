//! Token revocation: tokens refused although their signature and `exp` are
//! good. Three kinds of entry, each in force until its `until`:
//!
//! - **by user**: every token of `userId` issued (`iat`) at or before
//!   `issuedBefore` (a token without `iat` counts as issued at 0, so it is
//!   refused too): `POST /admin/kick` with `revoke: true`, or
//!   `POST /admin/revoke {"userId"}`. Tokens issued later work again.
//! - **a ban**: every token of `userId` until `banUntil`, whenever issued
//!   (`banSeconds` on either call).
//! - **by token id**: the token whose `jti` claim is `jti`.
//!
//! Entries are stored in the database (they survive restarts), held here
//! for the handshake path (no database read per connection), relayed to
//! other nodes as admin operations, and reloaded from the database every
//! `auth.revocation_refresh_secs` (which also covers a node that missed a
//! relay while Redis was away). [`RevocationSet`] is the plain state,
//! unit-tested below; [`Revocations`] shares it between threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::auth::Claims;

/// One revocation. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub id: String,
    pub user_id: Option<String>,
    pub jti: Option<String>,
    /// Tokens of `user_id` with `iat` at or before this are refused.
    pub issued_before: Option<u64>,
    /// Every token of `user_id` is refused until then.
    pub ban_until: Option<u64>,
    /// The entry holds until then and is pruned after.
    pub until: u64,
    pub reason: String,
    pub created_at: u64,
}

/// A change to the set, as the admin API makes it and nodes relay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", content = "value", rename_all = "snake_case")]
pub enum RevocationChange {
    Add(Revocation),
    Lift(String),
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Issued at or before a revocation of its user.
    Revoked,
    /// Its user is banned until then.
    Banned(u64),
    /// Its `jti` is revoked.
    TokenRevoked,
}

impl Revocation {
    fn refuses(&self, claims: &Claims, now: u64) -> Option<Refusal> {
        if now >= self.until {
            return None;
        }
        if let Some(jti) = &self.jti {
            return (claims.jti.as_deref() == Some(jti.as_str())).then_some(Refusal::TokenRevoked);
        }
        if self.user_id.as_deref() != Some(claims.sub.as_str()) {
            return None;
        }
        if let Some(end) = self.ban_until.filter(|end| now < *end) {
            return Some(Refusal::Banned(end));
        }
        let issued = claims.iat.unwrap_or(0);
        self.issued_before
            .is_some_and(|before| issued <= before)
            .then_some(Refusal::Revoked)
    }
}

/// The entries in force, indexed by user and by token id, and the ids
/// lifted lately (so a reload that read the database before a lift does not
/// bring the entry back).
#[derive(Debug, Default)]
pub struct RevocationSet {
    entries: HashMap<String, Revocation>,
    by_user: HashMap<String, Vec<String>>,
    by_jti: HashMap<String, Vec<String>>,
    lifted: HashMap<String, u64>,
}

/// How long a lift is remembered against reloads, in seconds.
const LIFT_MEMORY_SECS: u64 = 600;

impl RevocationSet {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds (or replaces) an entry. A lifted id stays lifted.
    pub fn add(&mut self, r: Revocation) {
        if self.lifted.contains_key(&r.id) {
            return;
        }
        self.remove(&r.id);
        if let Some(jti) = &r.jti {
            self.by_jti
                .entry(jti.clone())
                .or_default()
                .push(r.id.clone());
        } else if let Some(user) = &r.user_id {
            self.by_user
                .entry(user.clone())
                .or_default()
                .push(r.id.clone());
        }
        self.entries.insert(r.id.clone(), r);
    }

    /// Lifts an entry; true when it was in force here.
    pub fn lift(&mut self, id: &str, now: u64) -> bool {
        self.lifted.insert(id.to_string(), now);
        self.remove(id)
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(r) = self.entries.remove(id) else {
            return false;
        };
        let (index, key) = match (&r.jti, &r.user_id) {
            (Some(jti), _) => (&mut self.by_jti, jti),
            (None, Some(user)) => (&mut self.by_user, user),
            (None, None) => return true,
        };
        if let Some(ids) = index.get_mut(key) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                index.remove(key);
            }
        }
        true
    }

    /// Why `claims` are refused, if they are.
    pub fn refusal(&self, claims: &Claims, now: u64) -> Option<Refusal> {
        let by_user = self.by_user.get(&claims.sub).into_iter().flatten();
        let by_jti = claims
            .jti
            .as_ref()
            .and_then(|jti| self.by_jti.get(jti))
            .into_iter()
            .flatten();
        by_user
            .chain(by_jti)
            .filter_map(|id| self.entries.get(id)?.refuses(claims, now))
            .max_by_key(|r| match r {
                Refusal::Banned(end) => *end,
                _ => 0,
            })
    }

    /// Replaces the entries with `stored` (read from the database since
    /// `read_at`), keeping the ones added here since then and leaving out
    /// the ones lifted here; drops what has run out.
    pub fn reload(&mut self, stored: Vec<Revocation>, read_at: u64, now: u64) {
        let recent: Vec<Revocation> = self
            .entries
            .values()
            .filter(|r| r.created_at >= read_at)
            .cloned()
            .collect();
        self.entries.clear();
        self.by_user.clear();
        self.by_jti.clear();
        self.lifted
            .retain(|_, at| now.saturating_sub(*at) < LIFT_MEMORY_SECS);
        for r in stored.into_iter().chain(recent) {
            if r.until > now {
                self.add(r);
            }
        }
    }

    /// The entries in force, oldest first.
    pub fn list(&self, now: u64) -> Vec<Revocation> {
        let mut list: Vec<Revocation> = self
            .entries
            .values()
            .filter(|r| r.until > now)
            .cloned()
            .collect();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        list
    }
}

/// The set, shared by the handshake path, the admin API and the registry.
/// Reads take no lock while nothing is revoked.
#[derive(Debug, Default)]
pub struct Revocations {
    set: RwLock<RevocationSet>,
    any: AtomicBool,
}

impl Revocations {
    pub fn refusal(&self, claims: &Claims, now: u64) -> Option<Refusal> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.read().refusal(claims, now)
    }

    pub fn add(&self, r: Revocation) {
        self.change(|set| set.add(r));
    }

    pub fn lift(&self, id: &str, now: u64) -> bool {
        self.change(|set| set.lift(id, now))
    }

    /// Applies a change; true when it changed anything here.
    pub fn apply(&self, change: RevocationChange, now: u64) -> bool {
        match change {
            RevocationChange::Add(r) => {
                self.add(r);
                true
            }
            RevocationChange::Lift(id) => self.lift(&id, now),
        }
    }

    pub fn reload(&self, stored: Vec<Revocation>, read_at: u64, now: u64) {
        self.change(|set| set.reload(stored, read_at, now));
    }

    pub fn list(&self, now: u64) -> Vec<Revocation> {
        self.read().list(now)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RevocationSet> {
        self.set.read().unwrap_or_else(|e| e.into_inner())
    }

    fn change<T>(&self, f: impl FnOnce(&mut RevocationSet) -> T) -> T {
        let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut set);
        self.any.store(!set.is_empty(), Ordering::Release);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, iat: Option<u64>, jti: Option<&str>) -> Claims {
        Claims {
            sub: sub.into(),
            exp: 10_000,
            iat,
            jti: jti.map(Into::into),
            name: None,
            rooms: None,
            role: None,
            iss: None,
            roles: None,
            aud: None,
        }
    }

    fn of_user(id: &str, user: &str, before: u64, ban: Option<u64>) -> Revocation {
        Revocation {
            id: id.into(),
            user_id: Some(user.into()),
            jti: None,
            issued_before: Some(before),
            ban_until: ban,
            until: 5_000,
            reason: String::new(),
            created_at: before,
        }
    }

    fn of_jti(id: &str, jti: &str) -> Revocation {
        Revocation {
            id: id.into(),
            user_id: None,
            jti: Some(jti.into()),
            issued_before: None,
            ban_until: None,
            until: 5_000,
            reason: String::new(),
            created_at: 100,
        }
    }

    #[test]
    fn a_user_revocation_refuses_tokens_issued_at_or_before_it() {
        let mut set = RevocationSet::default();
        set.add(of_user("r1", "alice", 100, None));
        let refused = |iat| set.refusal(&claims("alice", iat, None), 150);
        assert_eq!(refused(Some(99)), Some(Refusal::Revoked));
        assert_eq!(refused(Some(100)), Some(Refusal::Revoked), "at the kick");
        assert_eq!(refused(None), Some(Refusal::Revoked), "no iat: issued at 0");
        assert_eq!(refused(Some(101)), None, "issued after");
        assert_eq!(set.refusal(&claims("bob", Some(1), None), 150), None);
    }

    #[test]
    fn a_ban_refuses_fresh_tokens_until_it_ends() {
        let mut set = RevocationSet::default();
        set.add(of_user("r1", "alice", 100, Some(200)));
        let fresh = claims("alice", Some(150), None);
        assert_eq!(set.refusal(&fresh, 150), Some(Refusal::Banned(200)));
        assert_eq!(set.refusal(&fresh, 200), None, "ban over");
        let old = claims("alice", Some(90), None);
        assert_eq!(set.refusal(&old, 250), Some(Refusal::Revoked));
    }

    #[test]
    fn a_jti_revocation_refuses_that_token_only() {
        let mut set = RevocationSet::default();
        set.add(of_jti("r1", "t-1"));
        assert_eq!(
            set.refusal(&claims("alice", Some(1), Some("t-1")), 150),
            Some(Refusal::TokenRevoked)
        );
        assert_eq!(
            set.refusal(&claims("alice", Some(1), Some("t-2")), 150),
            None
        );
        assert_eq!(set.refusal(&claims("alice", Some(1), None), 150), None);
    }

    #[test]
    fn entries_stop_at_until_and_lifts_remove_them() {
        let mut set = RevocationSet::default();
        set.add(of_user("r1", "alice", 100, None));
        set.add(of_jti("r2", "t-1"));
        let c = claims("alice", Some(1), Some("t-1"));
        assert!(set.refusal(&c, 4_999).is_some());
        assert_eq!(set.refusal(&c, 5_000), None, "past until");
        assert!(set.lift("r1", 150));
        assert!(!set.lift("r1", 150), "already lifted");
        assert_eq!(set.refusal(&c, 150), Some(Refusal::TokenRevoked));
        assert!(set.lift("r2", 150));
        assert!(set.is_empty());
        assert!(set.by_user.is_empty() && set.by_jti.is_empty());
    }

    #[test]
    fn a_reload_keeps_recent_additions_and_recent_lifts() {
        let mut set = RevocationSet::default();
        set.add(of_user("old", "alice", 100, None));
        set.add(of_user("gone", "bob", 100, None));
        // Read from the database at 300; meanwhile "new" was added and
        // "gone" lifted here.
        set.add(of_user("new", "carol", 310, None));
        set.lift("gone", 320);
        let stored = vec![
            of_user("old", "alice", 100, None),
            of_user("gone", "bob", 100, None),
        ];
        set.reload(stored, 300, 330);
        let ids: Vec<String> = set.list(330).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["old", "new"]);
        // An entry lifted on another node (absent from the database) goes.
        set.reload(vec![of_user("new", "carol", 310, None)], 400, 400);
        let ids: Vec<String> = set.list(400).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["new"]);
    }

    #[test]
    fn the_shared_set_takes_no_lock_while_empty_and_tracks_emptiness() {
        let shared = Revocations::default();
        let c = claims("alice", Some(1), None);
        assert_eq!(shared.refusal(&c, 150), None);
        shared.add(of_user("r1", "alice", 100, None));
        assert_eq!(shared.refusal(&c, 150), Some(Refusal::Revoked));
        assert!(shared.lift("r1", 150));
        assert!(!shared.any.load(Ordering::Acquire));
        assert_eq!(shared.refusal(&c, 150), None);
    }
}
