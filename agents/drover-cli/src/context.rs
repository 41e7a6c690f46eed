//! What every command gets: the resolved global options and a master client, plus the
//! translation of client failures into the messages the CLI prints.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use drover_api::client::{ClientError, MasterClient, SchedulerClient};
use drover_api::{ErrorCode, TaskId};

use crate::cli::GlobalArgs;

/// How long one ordinary request may take before the CLI gives up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The resolved global options and the master client.
#[derive(Debug, Clone)]
pub struct Context {
    /// The master's base URL.
    pub master_url: String,
    /// The scheduler's base URL, for the app, job and deployment commands.
    pub scheduler_url: String,
    /// The bearer token, from --token or --token-file.
    pub token: Option<String>,
    /// Print JSON instead of tables.
    pub json: bool,
    master: MasterClient,
}

impl Context {
    /// Resolves the token and builds the master client.
    pub fn from_globals(g: &GlobalArgs) -> anyhow::Result<Self> {
        let token = resolve_token(g.token.clone(), g.token_file.as_deref())?;
        let master = MasterClient::new(&g.master, token.clone()).map_err(|e| match e {
            ClientError::InvalidUrl(url) => {
                anyhow!("invalid master URL {url:?}: it must start with http:// or https://")
            }
            other => anyhow!("cannot set up the HTTP client: {other}"),
        })?;
        Ok(Context {
            master_url: master.http().base().to_string(),
            scheduler_url: g.scheduler.trim_end_matches('/').to_string(),
            token,
            json: g.json,
            master,
        })
    }

    /// A client for the scheduler (apps, jobs and deployments).
    pub fn scheduler(&self) -> anyhow::Result<SchedulerClient> {
        SchedulerClient::new(&self.scheduler_url, self.token.clone()).map_err(|e| match e {
            ClientError::InvalidUrl(url) => {
                anyhow!("invalid scheduler URL {url:?}: it must start with http:// or https://")
            }
            other => anyhow!("cannot set up the HTTP client: {other}"),
        })
    }

    /// Awaits one call to the scheduler, bounded by [`CALL_TIMEOUT`], and turns its
    /// failure into the message the CLI prints.
    pub async fn call_scheduler<T>(
        &self,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(result) => result.map_err(|e| scheduler_error(&self.scheduler_url, e)),
            Err(_) => bail!(
                "the scheduler at {} did not answer within {}s",
                self.scheduler_url,
                CALL_TIMEOUT.as_secs()
            ),
        }
    }

    /// The master client, for calls that need their own error handling (streams).
    pub fn master(&self) -> &MasterClient {
        &self.master
    }

    /// Awaits one call to the master, bounded by [`CALL_TIMEOUT`], and turns its failure
    /// into the message the CLI prints.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(result) => result.map_err(|e| self.master_error(e)),
            Err(_) => bail!(
                "the master at {} did not answer within {}s",
                self.master_url,
                CALL_TIMEOUT.as_secs()
            ),
        }
    }

    /// The message for a failed call to the master.
    pub fn master_error(&self, err: ClientError) -> anyhow::Error {
        client_error(&self.master_url, err)
    }
}

/// The message for a failed call to the service at `base`: the API's own message for
/// an error answer (it names the field), `cannot reach the master at URL` when there
/// was no answer.
pub fn client_error(base: &str, err: ClientError) -> anyhow::Error {
    match err {
        ClientError::Api { body, .. } => {
            if body.code == ErrorCode::Unauthorized {
                anyhow!(
                    "{} (give a token with --token, --token-file or DROVER_TOKEN)",
                    body.message
                )
            } else {
                anyhow!("{}", body.message)
            }
        }
        ClientError::Transport { source, .. } => {
            anyhow!("cannot reach the master at {base}: {}", root_cause(&source))
        }
        ClientError::Decode { url, message } => anyhow!("unexpected answer from {url}: {message}"),
        ClientError::InvalidUrl(url) => anyhow!("invalid URL {url:?}"),
    }
}

/// The message for a failed call to the scheduler at `base` (as [`client_error`], naming
/// the scheduler when there was no answer).
pub fn scheduler_error(base: &str, err: ClientError) -> anyhow::Error {
    match err {
        ClientError::Transport { source, .. } => {
            anyhow!(
                "cannot reach the scheduler at {base}: {} (set --scheduler or DROVER_SCHEDULER)",
                root_cause(&source)
            )
        }
        other => client_error(base, other),
    }
}

/// The innermost cause of an error, which says what actually went wrong
/// (`Connection refused (os error 111)`).
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The token from `--token` or else `--token-file`; an empty or unreadable file is an error.
pub fn resolve_token(
    token: Option<String>,
    token_file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    if let Some(t) = token.filter(|t| !t.trim().is_empty()) {
        return Ok(Some(t.trim().to_string()));
    }
    let Some(path) = token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    Ok(Some(token.to_string()))
}

/// A task id from the command line, checked before it goes into a URL.
pub fn task_id(s: &str) -> anyhow::Result<TaskId> {
    let id = TaskId::from(s);
    id.validate().map_err(|e| anyhow!("{}", e.message))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_api::ApiError;

    #[test]
    fn api_errors_print_the_api_message() {
        let err = ClientError::Api {
            url: "http://m/v1/tasks".into(),
            status: 400,
            body: Box::new(ApiError::invalid(
                "task.resources.cpus",
                "must be a non-negative number, got -1",
            )),
        };
        assert_eq!(
            client_error("http://m", err).to_string(),
            "task.resources.cpus: must be a non-negative number, got -1"
        );
    }

    #[test]
    fn token_flag_wins_and_files_are_trimmed() {
        let dir = std::env::temp_dir().join(format!("drover-cli-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("token");
        std::fs::write(&file, "  secret\n").expect("write token");
        assert_eq!(
            resolve_token(None, Some(&file)).expect("read").as_deref(),
            Some("secret")
        );
        assert_eq!(
            resolve_token(Some("flag".into()), Some(&file))
                .expect("flag")
                .as_deref(),
            Some("flag")
        );
        std::fs::write(&file, "\n").expect("write empty");
        assert!(resolve_token(None, Some(&file)).is_err());
        assert!(resolve_token(None, Some(&dir.join("missing"))).is_err());
        assert_eq!(resolve_token(None, None).expect("none"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_task_ids_are_refused_locally() {
        assert!(task_id("web.1a2b").is_ok());
        assert!(task_id("../etc").is_err());
    }
}
