//! SSH with the `ssh2` crate (libssh2, built in): connect with a timeout, check the host
//! key against `known_hosts` (strict; `accept_new` adds an unknown key, never a changed
//! one), log in with a key file or ssh-agent, run commands (through `sudo -n` when the
//! host says become and the user is not root), upload files over SCP. Blocking: callers
//! run it on their own threads.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ssh2::{CheckResult, HashType, KnownHostFileKind, KnownHostKeyFormat, Session};

use crate::host::Connection;

/// Why an SSH step failed, per host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// No TCP connection (refused, no route, timed out).
    #[error("unreachable: {address}: {source}")]
    Unreachable {
        /// `host:port`.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The SSH handshake failed.
    #[error("ssh handshake with {address} failed: {source}")]
    Handshake {
        /// `host:port`.
        address: String,
        /// The cause.
        #[source]
        source: ssh2::Error,
    },
    /// `known_hosts` has no key for the host (and `--accept-new` was not given).
    #[error(
        "unknown host key for {host} ({fingerprint}): not in {known_hosts} (check it, then pass --accept-new to add it)"
    )]
    HostKeyUnknown {
        /// The host as looked up.
        host: String,
        /// `SHA256:...` of the key offered.
        fingerprint: String,
        /// The file.
        known_hosts: PathBuf,
    },
    /// `known_hosts` has a different key for the host: refused, always.
    #[error(
        "host key mismatch for {host}: it offers {fingerprint}, which differs from the key in {known_hosts} (possible man-in-the-middle; refused)"
    )]
    HostKeyMismatch {
        /// The host as looked up.
        host: String,
        /// `SHA256:...` of the key offered.
        fingerprint: String,
        /// The file.
        known_hosts: PathBuf,
    },
    /// `known_hosts` could not be read or written.
    #[error("known hosts file {path}: {message}")]
    KnownHosts {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// No key was accepted.
    #[error("authentication failed for {user}@{address} (tried: {tried})")]
    AuthFailed {
        /// The user.
        user: String,
        /// `host:port`.
        address: String,
        /// The methods tried.
        tried: String,
    },
    /// A command exited non-zero.
    #[error("command failed (exit {status}): {command}: {stderr}")]
    CommandFailed {
        /// What ran.
        command: String,
        /// Its exit status.
        status: i32,
        /// Its stderr (trimmed).
        stderr: String,
    },
    /// An SSH operation failed (e.g. timed out) during `what`.
    #[error("{what}: {source}")]
    Session {
        /// The step.
        what: String,
        /// The cause.
        #[source]
        source: ssh2::Error,
    },
    /// A local file could not be read or a channel broke.
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Settings for every connection.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The known hosts file (`~/.ssh/known_hosts` by default).
    pub known_hosts: PathBuf,
    /// Add unknown host keys (never changed ones), like OpenSSH's `accept-new`.
    pub accept_new: bool,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of each blocking SSH operation after connecting.
    pub io_timeout: Duration,
}

impl SshOptions {
    /// `~/.ssh/known_hosts`, strict, 10 s to connect, 120 s per operation.
    pub fn new(known_hosts: Option<PathBuf>, accept_new: bool) -> SshOptions {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        SshOptions {
            known_hosts: known_hosts
                .unwrap_or_else(|| PathBuf::from(home).join(".ssh/known_hosts")),
            accept_new,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(120),
        }
    }
}

/// Serialises writes to the known hosts file from parallel connections.
static KNOWN_HOSTS_WRITE: Mutex<()> = Mutex::new(());

/// The output of a command.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status.
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A logged-in SSH session to one host.
pub struct SshHost {
    session: Session,
    sudo: bool,
}

impl std::fmt::Debug for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHost").field("sudo", &self.sudo).finish()
    }
}

/// Quotes a word for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

impl SshHost {
    /// Connects, checks the host key, logs in.
    pub fn connect(conn: &Connection, opts: &SshOptions) -> Result<SshHost, SshError> {
        let address = format!("{}:{}", conn.address, conn.port);
        let unreachable = |source| SshError::Unreachable {
            address: address.clone(),
            source,
        };
        let addrs: Vec<_> = (conn.address.as_str(), conn.port)
            .to_socket_addrs()
            .map_err(unreachable)?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, opts.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            unreachable(last.unwrap_or_else(|| std::io::Error::other("no address")))
        })?;
        let session_err = |what: &str| {
            let what = what.to_string();
            move |source| SshError::Session { what, source }
        };
        let mut session = Session::new().map_err(session_err("cannot start an ssh session"))?;
        session.set_timeout(u32::try_from(opts.io_timeout.as_millis()).unwrap_or(u32::MAX));
        session.set_tcp_stream(tcp);
        session.handshake().map_err(|source| SshError::Handshake {
            address: address.clone(),
            source,
        })?;
        check_host_key(&session, conn, opts)?;
        authenticate(&session, conn, &address)?;
        Ok(SshHost {
            session,
            sudo: conn.needs_sudo(),
        })
    }

    /// Runs a shell command (as root when the host says become) and returns its output
    /// whatever its exit status.
    pub fn exec(&self, command: &str) -> Result<Output, SshError> {
        let full = if self.sudo {
            format!("sudo -n sh -c {}", quote(command))
        } else {
            command.to_string()
        };
        let err = |what: &str| {
            let what = format!("{what}: {command}");
            move |source| SshError::Session { what, source }
        };
        let mut ch = self
            .session
            .channel_session()
            .map_err(err("cannot open a channel"))?;
        ch.exec(&full).map_err(err("cannot run"))?;
        let mut stdout = String::new();
        ch.read_to_string(&mut stdout)
            .map_err(|source| SshError::Io {
                what: format!("reading the output of {command}"),
                source,
            })?;
        let mut stderr = String::new();
        ch.stderr()
            .read_to_string(&mut stderr)
            .map_err(|source| SshError::Io {
                what: format!("reading the errors of {command}"),
                source,
            })?;
        ch.wait_close().map_err(err("waiting for"))?;
        let status = ch.exit_status().map_err(err("no exit status from"))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs a command; a non-zero exit is an error carrying its stderr.
    pub fn run(&self, command: &str) -> Result<String, SshError> {
        self.run_as(command, command)
    }

    /// Like [`SshHost::run`], with `what` naming the command in errors (for scripts too
    /// long to show).
    pub fn run_as(&self, what: &str, command: &str) -> Result<String, SshError> {
        let out = self.exec(command)?;
        if out.status != 0 {
            let stderr = if out.stderr.trim().is_empty() {
                out.stdout.trim().to_string()
            } else {
                out.stderr.trim().to_string()
            };
            return Err(SshError::CommandFailed {
                command: what.to_string(),
                status: out.status,
                stderr,
            });
        }
        Ok(out.stdout)
    }

    /// Uploads a local file to `remote` (as the login user) with mode 0600.
    pub fn upload(&self, local: &Path, remote: &str) -> Result<(), SshError> {
        let io = |what: String| move |source| SshError::Io { what, source };
        let data = std::fs::read(local).map_err(io(format!("cannot read {}", local.display())))?;
        let mut ch = self
            .session
            .scp_send(Path::new(remote), 0o600, data.len() as u64, None)
            .map_err(|source| SshError::Session {
                what: format!("cannot upload to {remote}"),
                source,
            })?;
        ch.write_all(&data)
            .map_err(io(format!("uploading to {remote}")))?;
        let close = |source| SshError::Session {
            what: format!("finishing the upload to {remote}"),
            source,
        };
        ch.send_eof().map_err(close)?;
        ch.wait_eof().map_err(close)?;
        ch.close().map_err(close)?;
        ch.wait_close().map_err(close)?;
        Ok(())
    }
}

fn check_host_key(session: &Session, conn: &Connection, opts: &SshOptions) -> Result<(), SshError> {
    let kh_err = |message: String| SshError::KnownHosts {
        path: opts.known_hosts.clone(),
        message,
    };
    let (key, key_type) = session
        .host_key()
        .ok_or_else(|| kh_err("the server offered no host key".into()))?;
    let fingerprint = session
        .host_key_hash(HashType::Sha256)
        .map(|h| format!("SHA256:{}", base64(h).trim_end_matches('=')))
        .unwrap_or_else(|| "SHA256:?".into());
    let mut known = session.known_hosts().map_err(|e| kh_err(e.to_string()))?;
    if opts.known_hosts.exists() {
        known
            .read_file(&opts.known_hosts, KnownHostFileKind::OpenSSH)
            .map_err(|e| kh_err(format!("cannot read: {e}")))?;
    }
    let shown = if conn.port == 22 {
        conn.address.clone()
    } else {
        format!("[{}]:{}", conn.address, conn.port)
    };
    match known.check_port(&conn.address, conn.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(SshError::HostKeyMismatch {
            host: shown,
            fingerprint,
            known_hosts: opts.known_hosts.clone(),
        }),
        CheckResult::NotFound if opts.accept_new => {
            // Re-read under the lock so parallel connections do not drop each other's keys.
            let _guard = KNOWN_HOSTS_WRITE.lock().unwrap_or_else(|p| p.into_inner());
            let mut fresh = session.known_hosts().map_err(|e| kh_err(e.to_string()))?;
            if opts.known_hosts.exists() {
                fresh
                    .read_file(&opts.known_hosts, KnownHostFileKind::OpenSSH)
                    .map_err(|e| kh_err(format!("cannot read: {e}")))?;
            } else if let Some(dir) = opts.known_hosts.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| kh_err(format!("cannot create {}: {e}", dir.display())))?;
            }
            fresh
                .add(
                    &shown,
                    key,
                    "added by drover fleet --accept-new",
                    KnownHostKeyFormat::from(key_type),
                )
                .map_err(|e| kh_err(format!("cannot add {shown}: {e}")))?;
            fresh
                .write_file(&opts.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| kh_err(format!("cannot write: {e}")))?;
            Ok(())
        }
        CheckResult::NotFound => Err(SshError::HostKeyUnknown {
            host: shown,
            fingerprint,
            known_hosts: opts.known_hosts.clone(),
        }),
        CheckResult::Failure => Err(kh_err(format!("cannot check the key of {shown}"))),
    }
}

fn authenticate(session: &Session, conn: &Connection, address: &str) -> Result<(), SshError> {
    let mut tried = Vec::new();
    let keys: Vec<PathBuf> = match &conn.key_file {
        Some(k) => vec![k.clone()],
        None => Vec::new(),
    };
    for k in &keys {
        tried.push(format!("key {}", k.display()));
        if session
            .userauth_pubkey_file(&conn.user, None, k, None)
            .is_ok()
            && session.authenticated()
        {
            return Ok(());
        }
    }
    if conn.key_file.is_none() {
        if std::env::var_os("SSH_AUTH_SOCK").is_some() {
            tried.push("ssh-agent".into());
            if session.userauth_agent(&conn.user).is_ok() && session.authenticated() {
                return Ok(());
            }
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let k = Path::new(&home).join(".ssh").join(name);
            if k.exists() {
                tried.push(format!("key {}", k.display()));
                if session
                    .userauth_pubkey_file(&conn.user, None, &k, None)
                    .is_ok()
                    && session.authenticated()
                {
                    return Ok(());
                }
            }
        }
    }
    Err(SshError::AuthFailed {
        user: conn.user.clone(),
        address: address.to_string(),
        tried: if tried.is_empty() {
            "no key file, no ssh-agent, no ~/.ssh/id_*".into()
        } else {
            tried.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("/usr/local/bin/x"), "/usr/local/bin/x");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8");
    }
}
