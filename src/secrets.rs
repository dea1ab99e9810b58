//! Secrets: random tokens from the OS CSPRNG, hashing for at-rest storage, constant-time checks.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh 256-bit random token, URL-safe base64 without padding (43 characters).
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the file holding a secret may look like. Refused: a file owned by another user than the
/// one ssfd runs as (root excepted: service managers provision credentials as root), or one
/// that group or others may write (anyone could swap the secret). A file group or others may
/// read is used with a warning (returned), since the secret has then leaked to them already.
pub fn check_secret_file(path: &std::path::Path) -> Result<Option<String>, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "{} is owned by uid {}, not by the user ssfd runs as (uid {me}) or root",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {mode:03o}); chmod 600 it",
            path.display()
        ));
    }
    if mode & 0o044 != 0 {
        return Ok(Some(format!(
            "{} is readable by group or others (mode {mode:03o}); chmod 600 it",
            path.display()
        )));
    }
    Ok(None)
}

/// A short random identifier (lower-case hex of 16 random bytes).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 of a token. Push tokens carry 256 bits of entropy, so a plain hash is enough to make the
/// stored value useless to someone who reads the database.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares a presented token with a stored hash in constant time.
pub fn token_matches(presented: &str, stored_hash: &[u8; 32]) -> bool {
    token_hash(presented).ct_eq(stored_hash).into()
}

/// Extracts the token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = token.trim();
        (!token.is_empty()).then_some(token)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_long() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn hash_comparison() {
        let t = random_token();
        let h = token_hash(&t);
        assert!(token_matches(&t, &h));
        assert!(!token_matches("other", &h));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn loose_or_foreign_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "t\n").unwrap();
        let chmod = |m| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m));
        chmod(0o600).unwrap();
        assert_eq!(check_secret_file(&path), Ok(None));
        chmod(0o644).unwrap();
        assert!(check_secret_file(&path)
            .unwrap()
            .unwrap()
            .contains("readable"));
        chmod(0o662).unwrap();
        assert!(check_secret_file(&path).unwrap_err().contains("writable"));
        chmod(0o600).unwrap();
        // Only root can give a file away; elsewhere this part cannot be shown.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(12345), None).unwrap();
            assert!(check_secret_file(&path).unwrap_err().contains("uid 12345"));
        }
    }
}
