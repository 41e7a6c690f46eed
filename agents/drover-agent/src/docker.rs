//! The Docker executor's thin async shell: the Docker Engine API over its unix socket
//! (bollard), with no per-task helper process.
//!
//! - [`spec`]: pure: the create request built from a task spec, and an exit read back.
//! - [`logs`]: pure: the cursor that copies a container's log stream exactly once.
//! - [`Engine`]: detection, images (present, else pulled), create/start, wait, stop,
//!   inspect, remove, and the log copy into the sandbox.
//!
//! The runner ([`crate::runner`]) drives one container per task through these calls; a
//! restarted agent finds its containers again by name and by their `drover.task-id` label.

pub mod logs;
pub mod spec;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::StartExecOptions;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, ExecConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use drover_api::task::LogStream;
use futures::StreamExt;

use crate::sandbox::Sandbox;
use logs::{LogCursor, split_timestamp};

/// The Docker Engine socket the agent looks for by default.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Seconds any one request may take to answer (its headers; streams run on).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How long detection waits for the engine's answer.
const DETECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the cursor is saved while logs flow.
const CURSOR_EVERY: Duration = Duration::from_millis(200);
/// How often a health check's exec is looked at until it exits.
const EXEC_POLL: Duration = Duration::from_millis(50);

/// Why a Docker call failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// No engine answers on the socket.
    #[error("no Docker Engine answers at {socket}: {message}")]
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The image is not present and could not be pulled.
    #[error("cannot pull image {image:?}: {message}")]
    Pull {
        /// The image reference.
        image: String,
        /// The registry's (or the engine's) message.
        message: String,
    },
    /// An engine call failed.
    #[error("docker {step} {target}: {message}")]
    Call {
        /// The call (`create`, `start`, `inspect`, ...).
        step: &'static str,
        /// The container or image.
        target: String,
        /// The engine's message.
        message: String,
        /// The HTTP status, when the engine answered one.
        status: Option<u16>,
    },
    /// Writing the logs into the sandbox failed.
    #[error("cannot write the logs of {container} into {path}: {source}")]
    Sandbox {
        /// The container.
        container: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl DockerError {
    /// Whether the engine answered 404 (no such container or image).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DockerError::Call {
                status: Some(404),
                ..
            }
        )
    }

    /// Whether the engine answered 409 (a name in use, a container in the wrong state).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            DockerError::Call {
                status: Some(409),
                ..
            }
        )
    }
}

fn call(step: &'static str, target: &str) -> impl FnOnce(BollardError) -> DockerError {
    let target = target.to_string();
    move |e| {
        let (status, message) = match e {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => (Some(status_code), message),
            other => (None, other.to_string()),
        };
        DockerError::Call {
            step,
            target,
            message,
            status,
        }
    }
}

/// A connection to one Docker Engine; clones share it.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    /// The socket, for messages.
    pub socket: PathBuf,
    /// The engine's version (`20.10.24+dfsg1`).
    pub version: String,
}

impl Engine {
    /// Connects to the engine at `socket` and checks it answers (negotiating the API
    /// version down to the engine's). `Err` says why this agent cannot run containers.
    pub async fn detect(socket: &Path) -> Result<Engine, DockerError> {
        let unreachable = |message: String| DockerError::Unreachable {
            socket: socket.to_path_buf(),
            message,
        };
        let path = socket
            .to_str()
            .ok_or_else(|| unreachable("the path is not UTF-8".into()))?;
        let docker =
            Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|e| unreachable(e.to_string()))?;
        let probe = async {
            let docker = docker.negotiate_version().await?;
            let version = docker.version().await?;
            Ok::<_, BollardError>((docker, version))
        };
        let (docker, version) = tokio::time::timeout(DETECT_TIMEOUT, probe)
            .await
            .map_err(|_| unreachable(format!("no answer within {DETECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Engine {
            docker,
            socket: socket.to_path_buf(),
            version: version.version.unwrap_or_else(|| "unknown".into()),
        })
    }

    /// Runs `/bin/sh -c command` inside a running container, as Marathon runs a
    /// container's COMMAND health checks: `Ok` when it exits 0, `Err` with its exit code,
    /// its timeout, or why it could not run. One that outlives `timeout` is killed.
    pub async fn exec_check(
        &self,
        container: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let created = self
            .docker
            .create_exec(
                container,
                ExecConfig {
                    cmd: Some(vec!["/bin/sh".into(), "-c".into(), command.into()]),
                    attach_stdout: Some(false),
                    attach_stderr: Some(false),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("cannot run the check in the container: {e}"))?;
        let id = created.id;
        let detached = StartExecOptions {
            detach: true,
            tty: false,
            output_capacity: None,
        };
        self.docker
            .start_exec(&id, Some(detached))
            .await
            .map_err(|e| format!("cannot run the check in the container: {e}"))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let info = self
                .docker
                .inspect_exec(&id)
                .await
                .map_err(|e| format!("cannot follow the check in the container: {e}"))?;
            // The exit code stays empty until the command has exited.
            if info.running != Some(true)
                && let Some(code) = info.exit_code
            {
                return if code == 0 {
                    Ok(())
                } else {
                    Err(format!("command exited with {code}"))
                };
            }
            if tokio::time::Instant::now() >= deadline {
                // Docker has no call to stop an exec; its process is visible to the host.
                if let Some(pid) = info
                    .pid
                    .and_then(|p| i32::try_from(p).ok())
                    .filter(|p| *p > 1)
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return Err(format!("command timed out after {timeout:?}"));
            }
            tokio::time::sleep(EXEC_POLL).await;
        }
    }

    /// Makes `image` present: used as it is when present (unless `force_pull`), pulled
    /// otherwise. A failed pull carries the registry's message.
    pub async fn ensure_image(&self, image: &str, force_pull: bool) -> Result<(), DockerError> {
        if !force_pull && self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let (from_image, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_image: Some(from_image.to_string()),
            tag: tag.map(str::to_string),
            ..Default::default()
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(step) = pull.next().await {
            if let Err(e) = step {
                let message = match e {
                    BollardError::DockerStreamError { error } => error,
                    BollardError::DockerResponseServerError { message, .. } => message,
                    other => other.to_string(),
                };
                return Err(DockerError::Pull {
                    image: image.to_string(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// The container named `name`, if there is one.
    pub async fn find(&self, name: &str) -> Result<Option<ContainerInspectResponse>, DockerError> {
        match self.inspect(name).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Inspects a container.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, DockerError> {
        self.docker
            .inspect_container(id, None)
            .await
            .map_err(call("inspect", id))
    }

    /// Creates the container `name`; returns its id.
    pub async fn create(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(call("create", name))?;
        Ok(created.id)
    }

    /// Starts a created container.
    pub async fn start(&self, id: &str) -> Result<(), DockerError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(call("start", id))
    }

    /// Resolves once the container is not running (or the wait could not be made).
    pub async fn wait(&self, id: &str) -> Result<(), DockerError> {
        let options = WaitContainerOptions {
            condition: "not-running".to_string(),
        };
        let mut stream = self.docker.wait_container(id, Some(options));
        match stream.next().await {
            // A non-zero exit comes back as an error; it is still an exit.
            Some(Err(BollardError::DockerContainerWaitError { .. })) | Some(Ok(_)) | None => Ok(()),
            Some(Err(e)) => Err(call("wait", id)(e)),
        }
    }

    /// Stops a container: its stop signal (SIGTERM) now, SIGKILL after `timeout` seconds.
    pub async fn stop(&self, id: &str, timeout: i32) -> Result<(), DockerError> {
        let options = StopContainerOptions {
            t: Some(timeout),
            signal: None,
        };
        match self.docker.stop_container(id, Some(options)).await {
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            other => other.map_err(call("stop", id)),
        }
    }

    /// Removes a container (and its anonymous volumes).
    pub async fn remove(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(call("remove", id))
    }

    /// Every container (running or not) that carries `label`, as (id, labels).
    pub async fn labelled(
        &self,
        label: &str,
    ) -> Result<Vec<(String, std::collections::HashMap<String, String>)>, DockerError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some([("label".to_string(), vec![label.to_string()])].into()),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(call("list", label))?;
        Ok(list
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect())
    }

    /// Copies the container's output into the sandbox's `stdout` and `stderr`, following
    /// it until the container stops, resuming from the sandbox's cursor (see [`logs`]).
    pub async fn copy_logs(&self, id: &str, sb: &Sandbox) -> Result<(), DockerError> {
        let io_err = |path: &Path| {
            let container = id.to_string();
            let path = path.to_path_buf();
            move |source| DockerError::Sandbox {
                container,
                path,
                source,
            }
        };
        let mut cursor = sb.read_log_cursor().ok().flatten().unwrap_or_default();
        let mut files = Vec::new();
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let path = sb.log_path(stream);
            use std::os::unix::fs::OpenOptionsExt;
            // Never through a link: the sandbox is shared with the container's user.
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io_err(&path))?;
            // Drop whatever was written after the cursor was last saved: it comes again.
            if f.metadata().map_err(io_err(&path))?.len() > cursor.len(stream) {
                f.set_len(cursor.len(stream)).map_err(io_err(&path))?;
            }
            files.push((path, f));
        }
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since: cursor.since(),
            timestamps: true,
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(options));
        let mut saved = tokio::time::Instant::now();
        let mut result = Ok(());
        while let Some(item) = stream.next().await {
            let (which, entry) = match item {
                Ok(LogOutput::StdOut { message }) => (LogStream::Stdout, message),
                Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                Ok(_) => continue,
                Err(e) => {
                    result = Err(call("logs", id)(e));
                    break;
                }
            };
            let Some((at, payload)) = split_timestamp(&entry) else {
                continue;
            };
            if !cursor.is_new(at) {
                continue;
            }
            let (path, f) = &mut files[usize::from(which == LogStream::Stderr)];
            f.write_all(payload).map_err(io_err(path))?;
            cursor.advance(which, at, payload.len());
            if saved.elapsed() >= CURSOR_EVERY {
                save_cursor(sb, &cursor);
                saved = tokio::time::Instant::now();
            }
        }
        save_cursor(sb, &cursor);
        result
    }
}

fn save_cursor(sb: &Sandbox, cursor: &LogCursor) {
    if let Err(e) = sb.write_log_cursor(cursor) {
        tracing::warn!("cannot save the log cursor: {e}");
    }
}

/// `repo[:tag]` or `repo@digest` as the pull API wants it: (image, tag). The tag is the
/// part after the last `:` that follows the last `/` (a registry's port is not a tag).
pub fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], Some(&image[name_start + i + 1..])),
        None => (image, Some("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_image_and_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(
            split_reference("drover/hello:2"),
            ("drover/hello", Some("2"))
        );
        assert_eq!(
            split_reference("registry:5000/team/app"),
            ("registry:5000/team/app", Some("latest"))
        );
        assert_eq!(
            split_reference("registry:5000/team/app:1.2"),
            ("registry:5000/team/app", Some("1.2"))
        );
        assert_eq!(split_reference("x@sha256:abc"), ("x@sha256:abc", None));
    }
}
