//! Identity mapping: from a subject's canonical keys to the local user name a host knows it by.
//!
//! `[identity] map_file` is a TOML table of `"<canonical key>" = "<local user>"`;
//! `[identity] rule = "email_local_part"` derives the user from an email key. The map wins.
//! The result reaches sinks (`localUser`, `SSFD_LOCAL_USER`) that end sessions on a host, so a
//! name that could be mistaken for an option or a path is never produced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::Config;
use crate::verify::subject::Subject;

/// The longest user name the rule derives (the Linux `useradd` limit).
const MAX_DERIVED_NAME: usize = 32;

type UserMap = Arc<BTreeMap<String, String>>;

/// The map file as last read, with what identified that version of it.
struct Cached {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
    map: UserMap,
}

/// Every action looks the map up; re-reading the file only when it changed keeps that cheap
/// while still picking up an operator's edit without a restart.
static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

fn load_map(path: &Path) -> UserMap {
    let meta = std::fs::metadata(path).ok();
    let modified = meta.as_ref().and_then(|m| m.modified().ok());
    let len = meta.as_ref().map_or(0, |m| m.len());
    let mut slot = match CACHE.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if let Some(c) = slot.as_ref() {
        if c.path == path && c.modified == modified && c.len == len && meta.is_some() {
            return c.map.clone();
        }
    }
    let map = Arc::new(read_map(path));
    *slot = Some(Cached {
        path: path.to_path_buf(),
        modified,
        len,
        map: map.clone(),
    });
    map
}

/// Reads the mapping file; an unreadable or malformed file maps nothing (and says so in the log).
fn read_map(path: &Path) -> BTreeMap<String, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "identity map_file unreadable");
            return BTreeMap::new();
        }
    };
    let raw = match toml::from_str::<BTreeMap<String, String>>(&text) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "identity map_file is not a TOML table of strings");
            return BTreeMap::new();
        }
    };
    let mut map = BTreeMap::new();
    for (key, user) in raw {
        if !acceptable_mapped_name(&user) {
            tracing::warn!(path = %path.display(), key = %key, "identity map_file: ignoring an entry whose user name is empty, has spaces or control characters, or starts with '-'");
            continue;
        }
        map.insert(normalise_key(&key), user);
    }
    map
}

/// Subject keys carry email addresses lower-cased; an operator may not have written them so.
fn normalise_key(key: &str) -> String {
    match key.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("email") => {
            format!("email:{}", rest.to_ascii_lowercase())
        }
        _ => key.to_string(),
    }
}

/// A name the operator wrote down is trusted, within what a sink can pass on safely.
fn acceptable_mapped_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A derived name must be a portable user name: the email local part comes from the
/// transmitter, and `alice/../root` or `-h` must never reach a command.
fn portable_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DERIVED_NAME
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name != "."
        && name != ".."
}

/// The local user for a subject, if the configuration can tell.
pub fn local_user(config: &Config, subject: &Subject) -> Option<String> {
    local_user_for_keys(config, &subject.keys)
}

/// The local user for a subject known by its canonical keys (as stored with a SET).
pub fn local_user_for_keys(config: &Config, keys: &[String]) -> Option<String> {
    let identity = config.identity.as_ref()?;
    if let Some(path) = &identity.map_file {
        let map = load_map(path);
        if let Some(user) = keys.iter().find_map(|k| map.get(k)) {
            return Some(user.clone());
        }
    }
    match identity.rule.as_deref() {
        Some("email_local_part") => keys.iter().find_map(|k| {
            // Only the user's own keys: a complex subject's other members are prefixed
            // (`device:email:...`) and must not name the user.
            let addr = k.strip_prefix("email:")?;
            let (local, _) = addr.rsplit_once('@')?;
            portable_user_name(local).then(|| local.to_string())
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IdentityConfig;

    fn config(map_file: Option<PathBuf>, rule: Option<&str>) -> Config {
        Config {
            identity: Some(IdentityConfig {
                map_file,
                rule: rule.map(String::from),
            }),
            ..Config::default()
        }
    }

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_identity_section_maps_nothing() {
        assert_eq!(
            local_user_for_keys(&Config::default(), &keys(&["email:alice@example.com"])),
            None
        );
    }

    #[test]
    fn email_local_part_rule() {
        let c = config(None, Some("email_local_part"));
        assert_eq!(
            local_user_for_keys(
                &c,
                &keys(&["iss_sub:https://idp|1", "email:alice@example.com"])
            ),
            Some("alice".into())
        );
        for refused in [
            "email:-rf@example.com",
            "email:a/b@example.com",
            "email:..@example.com",
            "email:a b@example.com",
            "email:averyveryveryveryverylongusername@example.com",
        ] {
            assert_eq!(
                local_user_for_keys(&c, &keys(&[refused])),
                None,
                "{refused}"
            );
        }
        assert_eq!(
            local_user_for_keys(&c, &keys(&["device:email:bob@example.com"])),
            None
        );
    }

    #[test]
    fn the_map_wins_and_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(
            &path,
            "\"email:Alice@Example.com\" = \"ally\"\n\"opaque:x\" = \"-bad\"\n",
        )
        .unwrap();
        let c = config(Some(path.clone()), Some("email_local_part"));
        assert_eq!(
            local_user_for_keys(&c, &keys(&["email:alice@example.com"])),
            Some("ally".into())
        );
        assert_eq!(local_user_for_keys(&c, &keys(&["opaque:x"])), None);
        assert_eq!(
            local_user_for_keys(&c, &keys(&["email:bob@example.com"])),
            Some("bob".into())
        );
        std::fs::write(&path, "\"email:alice@example.com\" = \"alice2\"\n").unwrap();
        assert_eq!(
            local_user_for_keys(&c, &keys(&["email:alice@example.com"])),
            Some("alice2".into())
        );
    }
}
