//! Console sessions: a random session id in a `Secure; HttpOnly; SameSite=Strict` cookie, known
//! to the daemon only by its hash, each with its own CSRF token for forms.
//!
//! Sessions live in memory: a restart signs everyone out, and signing out ends the session on
//! the daemon's side, not only in the browser.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::secrets::{random_token, token_hash};

pub const COOKIE_NAME: &str = "ssfd_console";
/// A session ends this long after sign-in, however busy it is.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// More live sessions than this and the oldest is ended (one operator rarely has many).
const MAX_SESSIONS: usize = 64;

/// A signed-in session as a request sees it.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub csrf: String,
}

struct Entry {
    csrf: String,
    started: Instant,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Entry>>,
}

impl Sessions {
    /// Starts a session; returns the cookie value.
    pub fn start(&self) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut live = self.lock();
        live.retain(|_, e| now.duration_since(e.started) < LIFETIME);
        while live.len() >= MAX_SESSIONS {
            let oldest = live.iter().min_by_key(|(_, e)| e.started).map(|(k, _)| *k);
            match oldest {
                Some(k) => live.remove(&k),
                None => break,
            };
        }
        live.insert(
            token_hash(&id),
            Entry {
                csrf: random_token(),
                started: now,
            },
        );
        id
    }

    /// The live session a cookie value names, if any.
    pub fn find(&self, cookie_value: &str) -> Option<SignedIn> {
        let key = token_hash(cookie_value);
        let mut live = self.lock();
        let expired = live
            .get(&key)
            .is_some_and(|e| e.started.elapsed() >= LIFETIME);
        if expired {
            live.remove(&key);
            return None;
        }
        live.get(&key).map(|e| SignedIn {
            csrf: e.csrf.clone(),
        })
    }

    pub fn end(&self, cookie_value: &str) {
        self.lock().remove(&token_hash(cookie_value));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        match self.live.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// Whether a submitted form token is the session's, compared in constant time.
pub fn csrf_matches(session: &SignedIn, presented: &str) -> bool {
    let (a, b) = (session.csrf.as_bytes(), presented.as_bytes());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The session cookie's value among a request's `Cookie` headers.
pub fn cookie_value(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session. `Secure` holds on plain-http loopback too: browsers treat
/// `localhost` and `127.0.0.1` as secure contexts.
pub fn set_cookie(value: &str) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/ui; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        LIFETIME.as_secs()
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/ui; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_session_is_found_until_it_ends() {
        let s = Sessions::default();
        let id = s.start();
        let found = s.find(&id).unwrap();
        assert_eq!(found.csrf.len(), 43);
        assert!(csrf_matches(&found, &found.csrf));
        assert!(!csrf_matches(&found, ""));
        assert!(!csrf_matches(&found, &format!("{}x", found.csrf)));
        assert!(s.find("other").is_none());
        s.end(&id);
        assert!(s.find(&id).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let first = s.start();
        for _ in 0..MAX_SESSIONS {
            s.start();
        }
        assert!(s.find(&first).is_none());
        assert_eq!(s.lock().len(), MAX_SESSIONS);
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; ssfd_console=abc ; b=2".parse().unwrap());
        assert_eq!(cookie_value(&h).as_deref(), Some("abc"));
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "ssfd_console=".parse().unwrap());
        assert_eq!(cookie_value(&h), None);
        assert!(set_cookie("v").contains("Secure; HttpOnly; SameSite=Strict"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
