//! Binding: print the bound address first, and refuse wide binds without a token.

use std::net::SocketAddr;

use anyhow::{Context, bail};

/// Binds `addr` (port 0 picks a free port) and prints `listening on http://ADDR` as the
/// first line of standard output, so tests and tools learn the port without racing.
pub async fn bind_and_announce(
    addr: &str,
    token: Option<&str>,
) -> anyhow::Result<tokio::net::TcpListener> {
    let parsed: SocketAddr = addr
        .parse()
        .with_context(|| format!("invalid listen address {addr:?} (want IP:PORT)"))?;
    check_bind_allowed(parsed, token)?;
    let listener = tokio::net::TcpListener::bind(parsed)
        .await
        .with_context(|| format!("failed to bind {parsed}"))?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("listening on http://{local}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(listener)
}

/// Anything but loopback needs a token: the default setup must be safe on a laptop.
pub fn check_bind_allowed(addr: SocketAddr, token: Option<&str>) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
        bail!(
            "refusing to listen on {addr} without a token: binding beyond loopback requires \
             --token-file (or the token environment variable)"
        );
    }
    Ok(())
}

/// Reads a token file (trimmed); an empty file is an error. A file others may read is
/// read all the same, with a warning: on an agent's host, tasks run as other users, and
/// one that can read the token can act as any part of the cluster.
pub fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && let Some(why) = token_file_exposure(meta.permissions().mode())
    {
        tracing::warn!(
            "token file {} {why}: make it readable by this service's user only (chmod 0600)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read token file {}", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    Ok(token)
}

/// Who besides the owner (and the owner's group, whose members the playbooks choose)
/// may read a token file of `mode`, or `None` when no one may.
pub fn token_file_exposure(mode: u32) -> Option<&'static str> {
    (mode & 0o004 != 0).then_some("is readable by every user")
}

/// The token from `--token` or `--token-file`, whichever is given.
pub fn resolve_token(
    token: Option<String>,
    token_file: Option<&std::path::Path>,
) -> anyhow::Result<Option<String>> {
    match (token.filter(|t| !t.is_empty()), token_file) {
        (Some(t), _) => Ok(Some(t)),
        (None, Some(p)) => Ok(Some(read_token_file(p)?)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_readable_token_file_is_reported() {
        assert_eq!(token_file_exposure(0o100600), None);
        assert_eq!(token_file_exposure(0o100640), None);
        assert!(token_file_exposure(0o100644).is_some());
    }

    #[test]
    fn wide_bind_needs_token() {
        assert!(check_bind_allowed("127.0.0.1:1".parse().unwrap(), None).is_ok());
        assert!(check_bind_allowed("[::1]:1".parse().unwrap(), None).is_ok());
        assert!(check_bind_allowed("0.0.0.0:1".parse().unwrap(), None).is_err());
        assert!(check_bind_allowed("0.0.0.0:1".parse().unwrap(), Some("")).is_err());
        assert!(check_bind_allowed("0.0.0.0:1".parse().unwrap(), Some("s3cret")).is_ok());
    }
}
