//! The keys this node seals webhook secrets and custom header values with at rest (the envelope is
//! `hookline_core::sealing`; the store seals and opens, `hookline_store`'s `sealed.rs`).
//!
//! Where the current key comes from:
//! - `encryption_key` (`HOOKLINE_ENCRYPTION_KEY`) when set, on any database;
//! - otherwise, for SQLite, a key file beside the database (`hookline.db` → `hookline.db.key`), made
//!   with mode 0600 on first start, so `hookline serve` with no configuration at all still
//!   encrypts. It must be backed up with the database: without it the secrets can't be read;
//! - otherwise, for PostgreSQL, nothing: the node refuses to start. Several nodes share the
//!   database, and a key file on one machine would leave the others unable to read what it wrote.
//!
//! `encryption_keys_old` adds keys that only decrypt, for a key rotation.

use crate::config::Config;
use anyhow::Context;
use hookline_core::sealing::{EncryptionKey, Keyring};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The keyring for the store `config` names: `sqlite` is the SQLite database's path, `None` for
/// PostgreSQL.
pub fn keyring(config: &Config, sqlite: Option<&Path>) -> anyhow::Result<Keyring> {
    let old = config.encryption_keys_old.clone();
    let current = match (&config.encryption_key, sqlite) {
        (Some(key), _) => key.clone(),
        (None, None) => anyhow::bail!(
            "encryption_key (HOOKLINE_ENCRYPTION_KEY) is required with PostgreSQL: webhook \
             secrets are stored encrypted, and every node must use the same key. Make one with \
             `openssl rand -base64 32` and give it to every node"
        ),
        // Nothing outlives an in-memory database, so its key needn't either.
        (None, Some(path)) if path.as_os_str() == ":memory:" => EncryptionKey::generate(),
        (None, Some(path)) => load_or_create(&key_file(path))?,
    };
    let ring = Keyring::new(current, old);
    tracing::debug!(current = %ring.current_id(), keys = ring.ids().len(), "encryption keys");
    Ok(ring)
}

/// The key file of a SQLite database: its path with `.key` appended.
pub fn key_file(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Reads the key file, or creates it with a new key when there is none.
fn load_or_create(path: &Path) -> anyhow::Result<EncryptionKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            EncryptionKey::parse(&text)
                .map_err(|e| anyhow::anyhow!("encryption key file {}: the key {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => {
            Err(e).with_context(|| format!("can't read encryption key file {}", path.display()))
        }
    }
}

/// Writes a new key to `path`, which must not exist. The key is written to a private temporary
/// file first and then linked into place, which fails if `path` appeared meanwhile: two processes
/// starting at once on a new database can't each write their own key, nor read a half-written
/// one; the slower one reads the winner's.
fn create(path: &Path) -> anyhow::Result<EncryptionKey> {
    let key = EncryptionKey::generate();
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let written = (|| -> std::io::Result<()> {
        let mut f = private_file(&tmp)?;
        f.write_all(format!("{}\n", key.to_base64()).as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                key_id = %key.id(),
                "created the encryption key file: back it up with the database (without it, webhook secrets can't be read)"
            );
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(path),
        Err(e) => Err(e).with_context(|| {
            format!(
                "can't create encryption key file {} (set encryption_key instead)",
                path.display()
            )
        }),
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// A key file others can read is a leak waiting to happen; say so (starting anyway: refusing would
/// take a running deployment down over a permission).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the encryption key file is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, String)]) -> Config {
        Config::load(None, std::iter::empty(), pairs).unwrap()
    }

    #[test]
    fn sqlite_without_a_key_gets_a_private_key_file_that_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hook.db");
        let ring = keyring(&config(&[]), Some(&db)).unwrap();
        let file = dir.path().join("hook.db.key");
        assert_eq!(key_file(&db), file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "key file mode {mode:o}");
        }
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(EncryptionKey::parse(&text).unwrap().id(), ring.current_id());
        // The next start reads the same key; no temporary file is left behind.
        let again = keyring(&config(&[]), Some(&db)).unwrap();
        assert_eq!(again.current_id(), ring.current_id());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_configured_key_wins_and_no_key_file_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hook.db");
        let key = EncryptionKey::generate();
        let old = EncryptionKey::generate();
        let c = config(&[
            ("encryption_key", key.to_base64()),
            ("encryption_keys_old", old.to_base64()),
        ]);
        let ring = keyring(&c, Some(&db)).unwrap();
        assert_eq!(ring.current_id(), key.id());
        assert!(ring.knows(old.id().as_str()));
        assert!(!key_file(&db).exists());
        assert_eq!(keyring(&c, None).unwrap().current_id(), key.id());
    }

    #[test]
    fn postgres_without_a_key_is_refused_with_a_clear_message() {
        let err = keyring(&config(&[]), None).unwrap_err().to_string();
        assert!(err.contains("HOOKLINE_ENCRYPTION_KEY"), "{err}");
        assert!(err.contains("PostgreSQL"), "{err}");
    }

    #[test]
    fn a_damaged_key_file_stops_the_start_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hook.db");
        std::fs::write(key_file(&db), "not-a-key\n").unwrap();
        let err = keyring(&config(&[]), Some(&db)).unwrap_err().to_string();
        assert!(err.contains("hook.db.key"), "{err}");
        assert!(!err.contains("not-a-key"), "{err}");
    }
}
