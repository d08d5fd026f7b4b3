//! `basic_auth_users`: user names with bcrypt hashes of their passwords.
//!
//! A bcrypt verification costs tens of milliseconds on purpose, and Prometheus sends the same
//! credentials with every scrape. So a credential that passed once is remembered, keyed by an
//! HMAC of user and password under a key drawn at start, as the toolkit keeps a cache of its
//! own. Failures are not remembered, so they always cost a verification; verifications run one
//! at a time, so that a flood of wrong passwords takes one core rather than all of them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use hyper::header::HeaderValue;
use ring::hmac;

use super::Problem;

/// How many verified credentials are remembered; past that, one is forgotten per new one.
const CACHED_CREDENTIALS: usize = 64;

/// The longest password bcrypt reads in full.
const BCRYPT_MAX_PASSWORD: usize = 72;

pub(super) struct BasicAuth {
    /// User name to bcrypt hash.
    users: BTreeMap<String, String>,
    /// A real hash of the file, verified for unknown users so that their answer takes as long
    /// as a wrong password would, and timing does not tell which users exist.
    decoy: String,
    /// HMACs of credentials that passed.
    verified: Mutex<HashSet<[u8; 32]>>,
    cache_key: hmac::Key,
    /// Taken around each bcrypt verification.
    bcrypt_turn: Mutex<()>,
}

impl BasicAuth {
    /// Checks that every password is a bcrypt hash, so that a typo fails at start rather than
    /// at the first scrape. `users` must not be empty.
    pub(super) fn new(users: BTreeMap<String, String>) -> Result<BasicAuth, Problem> {
        for (user, hash) in &users {
            let parts = bcrypt::HashParts::from_str(hash).ok();
            if !parts.is_some_and(|parts| (4..=31).contains(&parts.get_cost())) {
                let message = "not a bcrypt hash (such as htpasswd -nBC 10 \"\" prints)";
                return Err(Problem::new(format!("basic_auth_users.{user}"), message));
            }
        }
        let Some(decoy) = users.values().next().cloned() else {
            return Err(Problem::new("basic_auth_users", "names no user"));
        };
        let random = ring::rand::SystemRandom::new();
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &random).map_err(|_| {
            Problem::new("basic_auth_users", "cannot draw random bytes for the credential cache")
        })?;
        Ok(BasicAuth {
            users,
            decoy,
            verified: Mutex::new(HashSet::new()),
            cache_key,
            bcrypt_turn: Mutex::new(()),
        })
    }

    /// Whether `authorization` carries the password of a user of the file.
    pub(super) fn authorize(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let hash = std::str::from_utf8(&user).ok().and_then(|user| self.users.get(user));
        let Some(hash) = hash else {
            // Spend the time a known user would, then refuse whatever the outcome.
            let _ = self.verify(&password, &self.decoy);
            return false;
        };

        let fingerprint = self.fingerprint(&user, &password);
        if self.cached().contains(&fingerprint) {
            return true;
        }
        if !self.verify(&password, hash) {
            return false;
        }
        let mut cached = self.cached();
        if cached.len() >= CACHED_CREDENTIALS {
            if let Some(any) = cached.iter().next().copied() {
                cached.remove(&any);
            }
        }
        cached.insert(fingerprint);
        true
    }

    /// One bcrypt verification. Passwords past bcrypt's 72 bytes fail rather than being cut
    /// short, as Go's bcrypt refuses them; one of exactly 72 passes, as in Go, which is why
    /// this is not the crate's non-truncating check (that counts a terminating zero too).
    fn verify(&self, password: &[u8], hash: &str) -> bool {
        let _turn = self.bcrypt_turn.lock().unwrap_or_else(PoisonError::into_inner);
        if password.len() > BCRYPT_MAX_PASSWORD {
            // Spend the time all the same.
            let _ = bcrypt::verify(&password[..BCRYPT_MAX_PASSWORD], hash);
            return false;
        }
        bcrypt::verify(password, hash).unwrap_or(false)
    }

    /// The cache key of a credential. The user's length goes first so that no two
    /// user-password splits of the same bytes share a key.
    fn fingerprint(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.cache_key);
        context.update(&(user.len() as u64).to_be_bytes());
        context.update(user);
        context.update(password);
        let mut fingerprint = [0; 32];
        fingerprint.copy_from_slice(context.sign().as_ref());
        fingerprint
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Names the users only: neither hashes nor cached credentials are printed.
impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth").field("users", &self.users.keys()).finish_non_exhaustive()
    }
}

/// User and password of a `Basic` credential (RFC 7617), as bytes: the scheme is matched
/// without regard to case, the rest is base64 of `user:password`, split at the first colon.
fn credentials(header: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let header = header.as_bytes();
    let space = header.iter().position(|&byte| byte == b' ')?;
    let (scheme, encoded) = header.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let encoded = encoded.trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&byte| byte == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lowest cost bcrypt allows, to keep the tests fast.
    const COST: u32 = 4;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("header value")
    }

    fn alice() -> BasicAuth {
        let hash = bcrypt::hash("wonderland", COST).expect("hash");
        BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)])).expect("valid users")
    }

    #[test]
    fn only_the_right_password_passes() {
        let auth = alice();
        assert!(auth.authorize(Some(&header("alice", "wonderland"))));
        assert!(!auth.authorize(Some(&header("alice", "looking-glass"))));
        assert!(!auth.authorize(Some(&header("bob", "wonderland"))));
        assert!(!auth.authorize(None));
        assert!(!auth.authorize(Some(&HeaderValue::from_static("Bearer abc"))));
        assert!(!auth.authorize(Some(&HeaderValue::from_static("Basic !!!"))));
    }

    #[test]
    fn a_passing_credential_is_cached_and_a_failing_one_is_not() {
        let auth = alice();
        assert!(auth.authorize(Some(&header("alice", "wonderland"))));
        assert!(!auth.authorize(Some(&header("alice", "nope"))));
        assert_eq!(auth.cached().len(), 1);
        // Answered from the cache: the same credential passes again.
        assert!(auth.authorize(Some(&header("alice", "wonderland"))));
        assert_eq!(auth.cached().len(), 1);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let auth = alice();
        for n in 0..CACHED_CREDENTIALS + 5 {
            let fingerprint = auth.fingerprint(b"user", n.to_string().as_bytes());
            let mut cached = auth.cached();
            if cached.len() >= CACHED_CREDENTIALS {
                let any = *cached.iter().next().expect("an entry");
                cached.remove(&any);
            }
            cached.insert(fingerprint);
        }
        assert!(auth.authorize(Some(&header("alice", "wonderland"))));
        assert_eq!(auth.cached().len(), CACHED_CREDENTIALS);
    }

    #[test]
    fn splits_of_the_same_bytes_differ() {
        let auth = alice();
        assert_ne!(auth.fingerprint(b"ab", b"c"), auth.fingerprint(b"a", b"bc"));
    }

    #[test]
    fn the_header_is_read_as_rfc_7617_says() {
        let value = HeaderValue::from_static("bAsIc  YTpiOmM=");
        assert_eq!(credentials(&value), Some((b"a".to_vec(), b"b:c".to_vec())));
        assert_eq!(credentials(&HeaderValue::from_static("Basic YWJj")), None);
        assert_eq!(credentials(&HeaderValue::from_static("Basic")), None);
    }

    #[test]
    fn passwords_past_72_bytes_fail() {
        let long = "x".repeat(72);
        let hash = bcrypt::hash(&long, COST).expect("hash");
        let auth = BasicAuth::new(BTreeMap::from([("carol".to_owned(), hash)])).expect("valid");
        assert!(auth.authorize(Some(&header("carol", &long))));
        assert!(!auth.authorize(Some(&header("carol", &format!("{long}y")))));
    }

    #[test]
    fn a_password_that_is_no_hash_names_its_user() {
        let users = BTreeMap::from([("dave".to_owned(), "secret".to_owned())]);
        let problem = BasicAuth::new(users).expect_err("plain password");
        assert_eq!(problem.key, "basic_auth_users.dave");
        assert!(!problem.message.contains("secret"));
    }
}
