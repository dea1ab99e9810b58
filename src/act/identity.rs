//! Identity mapping: from a subject's canonical keys to the local user name a host knows it by.
//!
//! `[identity] map_file` is a TOML table of `"<canonical key>" = "<local user>"`;
//! `[identity] rule = "email_local_part"` derives the user from an email key. The map wins.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::verify::subject::Subject;

/// Reads the mapping file; an unreadable or malformed file maps nothing (and says so in the log).
fn load_map(path: &std::path::Path) -> BTreeMap<String, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "identity map_file unreadable");
            return BTreeMap::new();
        }
    };
    match toml::from_str::<BTreeMap<String, String>>(&text) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "identity map_file is not a TOML table of strings");
            BTreeMap::new()
        }
    }
}

/// The local user for a subject, if the configuration can tell.
pub fn local_user(config: &Config, subject: &Subject) -> Option<String> {
    let identity = config.identity.as_ref()?;
    if let Some(path) = &identity.map_file {
        let map = load_map(path);
        if let Some(user) = subject.keys.iter().find_map(|k| map.get(k)) {
            return Some(user.clone());
        }
    }
    match identity.rule.as_deref() {
        Some("email_local_part") => subject.keys.iter().find_map(|k| {
            let addr = k.strip_prefix("email:")?;
            let local = addr.split('@').next()?;
            (!local.is_empty()).then(|| local.to_string())
        }),
        _ => None,
    }
}
