//! Which deployment a remote command talks to, and with which key: `--url`/`--key`, a profile that
//! `hookline login` saved in `~/.config/hookline/config.toml`, or `HOOKLINE_URL`/`HOOKLINE_API_KEY`.
//!
//! Each of the URL and the key is taken from the first of these that has it:
//!
//! 1. the flag (`--url`, `--key`);
//! 2. the profile chosen on purpose (`--profile NAME`, else `HOOKLINE_PROFILE`), which must exist;
//! 3. the environment (`HOOKLINE_URL`, `HOOKLINE_API_KEY`);
//! 4. the profile named `default`, when the file has one.
//!
//! A profile chosen by name beats the environment because naming it is the more deliberate act: a
//! shell that exports `HOOKLINE_URL` for one deployment can still run `--profile staging`.
//!
//! The file holds API keys, so it is written with mode 0600 in a directory of mode 0700, through a
//! temporary file renamed over the old one (a crash never leaves half a file).

use crate::error::usage;
use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The options that say where a remote command goes (global within the command group).
#[derive(Args, Clone, Debug, Default)]
pub struct Target {
    /// The deployment's address, e.g. https://hooks.example.com [env: HOOKLINE_URL]
    #[arg(long, visible_alias = "api-url", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// An API key of the deployment (hk_…) [env: HOOKLINE_API_KEY]
    #[arg(long, global = true, value_name = "KEY")]
    pub key: Option<String>,
    /// A profile saved by `hookline login` [env: HOOKLINE_PROFILE; default: `default`]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
}

/// [`Target`] for `hookline webhooks`, where `--url` is a webhook's endpoint: the deployment is
/// given as `--api-url` there (or by the environment or a profile, as everywhere).
#[derive(Args, Clone, Debug, Default)]
pub struct WebhooksTarget {
    /// The deployment's address, e.g. https://hooks.example.com [env: HOOKLINE_URL]
    // Its own id: `create`, `update` and `test` have an argument `url` (the endpoint), and a
    // global argument sharing an id with a local one would be silently dropped there.
    #[arg(id = "api_url", long = "api-url", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// An API key of the deployment (hk_…) [env: HOOKLINE_API_KEY]
    #[arg(long, global = true, value_name = "KEY")]
    pub key: Option<String>,
    /// A profile saved by `hookline login` [env: HOOKLINE_PROFILE; default: `default`]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
}

impl From<&WebhooksTarget> for Target {
    fn from(t: &WebhooksTarget) -> Target {
        Target {
            url: t.url.clone(),
            key: t.key.clone(),
            profile: t.profile.clone(),
        }
    }
}

/// One saved deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Profile {
    pub url: String,
    pub key: String,
}

/// `config.toml`: `[profiles.NAME]` tables with `url` and `key`.
#[derive(Serialize, Deserialize, Default, Debug)]
pub struct ConfigFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

pub const DEFAULT_PROFILE: &str = "default";

/// `$XDG_CONFIG_HOME/hookline/config.toml`, else `$HOME/.config/hookline/config.toml`.
pub fn config_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => return Err(usage(
                "can't find the configuration directory: neither XDG_CONFIG_HOME nor HOME is set",
            )),
        },
    };
    Ok(base.join("hookline").join("config.toml"))
}

/// The file's profiles; an absent file has none.
pub fn load() -> anyhow::Result<(PathBuf, ConfigFile)> {
    let path = config_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((path, ConfigFile::default()))
        }
        Err(e) => return Err(usage(format!("can't read {}: {e}", path.display()))),
    };
    let file = toml::from_str(&text).map_err(|e| {
        usage(format!(
            "{} is not a valid profile file: {e}",
            path.display()
        ))
    })?;
    Ok((path, file))
}

/// Writes the file with mode 0600 (its directory 0700), atomically.
pub fn save(path: &std::path::Path, file: &ConfigFile) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .context("the profile file has no parent directory")?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("can't create {}", dir.display()))?;
    let text = format!(
        "# Hookline CLI profiles, written by `hookline login`. Holds API keys: keep it private.\n{}",
        toml::to_string(file).context("can't encode the profiles")?
    );
    let tmp = dir.join(format!(".config.toml.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!("can't write {}: {e}", path.display()));
    }
    Ok(())
}

/// Profile names stay simple so they read well in flags and in the TOML table names.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(usage(format!(
            "profile name `{name}` must be 1-64 letters, digits, `-` or `_`"
        )));
    }
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The URL and key by the precedence above; either may be missing (the caller says what to do).
pub fn resolve_parts(t: &Target) -> anyhow::Result<(Option<String>, Option<String>)> {
    if let (Some(url), Some(key)) = (&t.url, &t.key) {
        return Ok((Some(url.clone()), Some(key.clone())));
    }
    let chosen = t.profile.clone().or_else(|| env("HOOKLINE_PROFILE"));
    let needed = chosen.is_some()
        || (t.url.is_none() && env("HOOKLINE_URL").is_none())
        || (t.key.is_none() && env("HOOKLINE_API_KEY").is_none());
    let (path, file) = if !needed {
        // Nothing would be read from the file: don't fail on an unreadable one.
        (PathBuf::new(), ConfigFile::default())
    } else if chosen.is_none() && config_path().is_err() {
        // No home directory (a bare service environment): no default profile either.
        (PathBuf::new(), ConfigFile::default())
    } else {
        load()?
    };
    let named = match &chosen {
        Some(name) => {
            check_name(name)?;
            Some(file.profiles.get(name).cloned().ok_or_else(|| {
                usage(format!(
                    "no profile `{name}` in {}: create it with `hookline login --profile {name} --url … --key …`",
                    path.display()
                ))
            })?)
        }
        None => None,
    };
    let default = file.profiles.get(DEFAULT_PROFILE);
    let url = t
        .url
        .clone()
        .or_else(|| named.as_ref().map(|p| p.url.clone()))
        .or_else(|| env("HOOKLINE_URL"))
        .or_else(|| default.map(|p| p.url.clone()));
    let key = t
        .key
        .clone()
        .or_else(|| named.as_ref().map(|p| p.key.clone()))
        .or_else(|| env("HOOKLINE_API_KEY"))
        .or_else(|| default.map(|p| p.key.clone()));
    Ok((url, key))
}

/// The URL and key, both required.
pub fn resolve(t: &Target) -> anyhow::Result<(String, String)> {
    let (url, key) = resolve_parts(t)?;
    let url = url.ok_or_else(|| {
        usage("no server: give --api-url (or --url outside `webhooks`), set HOOKLINE_URL, or save a profile with `hookline login --url … --key …`")
    })?;
    let key = key.ok_or_else(|| {
        usage("no API key: give --key, set HOOKLINE_API_KEY, or save a profile with `hookline login --url … --key …`")
    })?;
    Ok((url, key))
}
