//! Secret references in receiver.toml: a path, or `credential:NAME` for a systemd credential
//! (`LoadCredential=`), resolved only when the file is read so that `ssfd check-config` works
//! outside the service's environment.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// Prefix of a secret path that names a systemd credential.
pub const CREDENTIAL_PREFIX: &str = "credential:";

/// Maps a secret path written as `credential:NAME` to `$CREDENTIALS_DIRECTORY/NAME`; any other
/// path is returned as it is. Errors when `CREDENTIALS_DIRECTORY` is unset or the name is bad.
pub fn resolve_secret_path(p: &Path) -> Result<PathBuf, ConfigError> {
    resolve_secret_path_in(p, std::env::var_os("CREDENTIALS_DIRECTORY").as_deref())
}

/// Reads a secret file (after [`resolve_secret_path`]) and strips trailing whitespace, so that a
/// file written with `echo` holds the same secret as one written without a newline.
pub fn read_secret(p: &Path) -> Result<String, ConfigError> {
    let resolved = resolve_secret_path(p)?;
    check_secret_file_or_fail(&resolved)?;
    let text = std::fs::read_to_string(&resolved).map_err(|source| ConfigError::Read {
        path: resolved.clone(),
        source,
    })?;
    let secret = text.trim_end();
    if secret.is_empty() {
        return Err(ConfigError::Value {
            key: resolved.display().to_string(),
            message: "the secret file is empty".to_string(),
        });
    }
    Ok(secret.to_string())
}

/// [`crate::secrets::check_secret_file`] as a configuration error; a missing file is left to
/// the read that follows (which names it), a warning is logged.
pub fn check_secret_file_or_fail(path: &Path) -> Result<(), ConfigError> {
    if !path.exists() {
        return Ok(());
    }
    match crate::secrets::check_secret_file(path) {
        Ok(None) => Ok(()),
        Ok(Some(warning)) => {
            tracing::warn!("{warning}");
            Ok(())
        }
        Err(message) => Err(ConfigError::Value {
            key: path.display().to_string(),
            message,
        }),
    }
}

pub(super) fn resolve_secret_path_in(
    p: &Path,
    creds_dir: Option<&OsStr>,
) -> Result<PathBuf, ConfigError> {
    let Some(name) = p.to_str().and_then(|s| s.strip_prefix(CREDENTIAL_PREFIX)) else {
        return Ok(p.to_path_buf());
    };
    let fail = |message: String| ConfigError::Value {
        key: p.display().to_string(),
        message,
    };
    check_credential_name(name).map_err(fail)?;
    match creds_dir {
        Some(dir) if !dir.is_empty() => Ok(Path::new(dir).join(name)),
        _ => Err(fail(
            "CREDENTIALS_DIRECTORY is not set; credential: paths need systemd's LoadCredential= \
             (or CREDENTIALS_DIRECTORY pointing at the directory that holds the file)"
                .to_string(),
        )),
    }
}

pub(super) fn check_credential_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(format!(
            "\"{CREDENTIAL_PREFIX}{name}\": a credential name is one file name, without '/'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths_resolve() {
        let dir = OsStr::new("/run/credentials/ssfd.service");
        assert_eq!(
            resolve_secret_path_in(Path::new("/etc/ssfd/secret"), None).unwrap(),
            PathBuf::from("/etc/ssfd/secret")
        );
        assert_eq!(
            resolve_secret_path_in(Path::new("credential:webhook"), Some(dir)).unwrap(),
            PathBuf::from("/run/credentials/ssfd.service/webhook")
        );
        let err = resolve_secret_path_in(Path::new("credential:webhook"), None).unwrap_err();
        assert!(err.to_string().contains("CREDENTIALS_DIRECTORY"), "{err}");
        assert!(err.to_string().contains("credential:webhook"), "{err}");
        assert!(
            resolve_secret_path_in(Path::new("credential:webhook"), Some(OsStr::new(""))).is_err()
        );
        assert!(resolve_secret_path_in(Path::new("credential:../x"), Some(dir)).is_err());
        assert!(resolve_secret_path_in(Path::new("credential:"), Some(dir)).is_err());
    }

    #[test]
    fn secrets_are_read_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "k3y \n\n").unwrap();
        assert_eq!(read_secret(&p).unwrap(), "k3y");
        std::fs::write(&p, " \n").unwrap();
        assert!(matches!(read_secret(&p), Err(ConfigError::Value { .. })));
        assert!(matches!(
            read_secret(&dir.path().join("missing")),
            Err(ConfigError::Read { .. })
        ));
    }
}
