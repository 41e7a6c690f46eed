//! Typed async clients: [`MasterClient`] for the master's API, [`AgentClient`] for an
//! agent's and [`SchedulerClient`] for the scheduler's. All sit on [`HttpClient`], which
//! adds the bearer token, decodes error bodies into [`ApiError`] and streams bodies for
//! logs and events. The few answer shapes of the scheduler's job API that are not
//! drover-api types of their own ([`JobDetails`], [`JobAccepted`], [`RunJobRequest`],
//! [`JobLogQuery`]) are defined here, next to the client that reads them.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ApiError;
use crate::agent::{
    AssignmentsQuery, HeartbeatRequest, HeartbeatResponse, NodeAssignments, RegisterRequest,
    RegisterResponse,
};
use crate::event::Event;
use crate::job::ChronosJob;
use crate::job_run::{JobRun, JobStats, JobStatus};
use crate::meta::VersionInfo;
use crate::node::Node;
use crate::task::LogStream;
use crate::task::{
    LaunchBatchRequest, LaunchBatchResponse, LaunchOutcome, LaunchRequest, LogQuery, Task,
    TaskFilter, TaskId,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request never got an HTTP answer (connection refused, timeout).
    #[error("cannot reach {url}: {source}")]
    Transport {
        /// The URL called.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status and body.
    #[error("{url} answered {status}: {body}")]
    Api {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The decoded error body.
        body: Box<ApiError>,
    },
    /// The server answered 2xx with a body that does not decode.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL called.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The base URL is not usable.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
}

impl ClientError {
    /// The API error body, if the server sent one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A base URL, an optional bearer token and a connection pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl HttpClient {
    /// A client for `base` (`http://127.0.0.1:5050`); `token` is sent as a bearer token.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::InvalidUrl(base));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Drover's servers close connections idle for 60 s (`--idle-timeout`): a pool
            // that kept them longer would now and then send a request on a connection the
            // server is closing.
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|source| ClientError::Transport {
                url: base.clone(),
                source,
            })?;
        Ok(HttpClient {
            base,
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send(
        &self,
        rb: reqwest::RequestBuilder,
        url: String,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = rb.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| {
            ApiError::new(
                if status == 401 {
                    crate::ErrorCode::Unauthorized
                } else {
                    crate::ErrorCode::Internal
                },
                String::from_utf8_lossy(&bytes).trim().to_string(),
            )
        });
        Err(ClientError::Api {
            url,
            status,
            body: Box::new(body),
        })
    }

    async fn decode<T: DeserializeOwned>(
        resp: reqwest::Response,
        url: &str,
    ) -> Result<T, ClientError> {
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.to_string(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: url.to_string(),
            message: e.to_string(),
        })
    }

    /// `GET /health`: the server's own word on whether it can do its work, whether it
    /// answers 200 (`ok`) or 503 (`unavailable`, with why).
    pub async fn health(&self) -> Result<crate::meta::Health, ClientError> {
        let url = self.url("/health");
        let resp = self
            .request(reqwest::Method::GET, "/health")
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        Self::decode(resp, &url).await
    }

    /// `GET path` (with an optional query), decoded as `T`.
    pub async fn get<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: Option<&Q>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut rb = self.request(reqwest::Method::GET, path);
        if let Some(q) = query {
            rb = rb.query(q);
        }
        let resp = self.send(rb, url.clone()).await?;
        Self::decode(resp, &url).await
    }

    /// `GET path` with a per-request timeout (for long polls).
    pub async fn get_with_timeout<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let rb = self
            .request(reqwest::Method::GET, path)
            .query(query)
            .timeout(timeout);
        let resp = self.send(rb, url.clone()).await?;
        Self::decode(resp, &url).await
    }

    /// `method path` with a JSON body, decoded as `T`.
    pub async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = self.send(rb, url.clone()).await?;
        Self::decode(resp, &url).await
    }

    /// `POST path` with a JSON body, decoded as `T`.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json(reqwest::Method::POST, path, Some(body))
            .await
    }

    /// `GET path` as a stream of body chunks (logs, events).
    pub async fn stream<Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<impl Stream<Item = Result<Bytes, ClientError>> + use<Q>, ClientError> {
        let url = self.url(path);
        let rb = self.request(reqwest::Method::GET, path).query(query);
        let resp = self.send(rb, url.clone()).await?;
        Ok(resp.bytes_stream().map(move |r| {
            r.map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })
        }))
    }
}

/// Percent-encodes one URL path segment (node names and task ids are plain, but be safe).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The master's API.
#[derive(Debug, Clone)]
pub struct MasterClient {
    http: HttpClient,
}

impl MasterClient {
    /// A client for the master at `base`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        Ok(MasterClient {
            http: HttpClient::new(base, token)?,
        })
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<VersionInfo, ClientError> {
        self.http.get::<_, ()>("/v1/version", None).await
    }

    /// `GET /v1/cluster`: the cluster this master serves.
    pub async fn cluster(&self) -> Result<crate::agent::ClusterInfo, ClientError> {
        self.http.get::<_, ()>("/v1/cluster", None).await
    }

    /// `GET /v1/nodes`.
    pub async fn nodes(&self) -> Result<Vec<Node>, ClientError> {
        self.http.get::<_, ()>("/v1/nodes", None).await
    }

    /// `GET /v1/nodes/{name}`.
    pub async fn node(&self, name: &str) -> Result<Node, ClientError> {
        self.http
            .get::<_, ()>(&format!("/v1/nodes/{}", path_segment(name)), None)
            .await
    }

    /// `POST /v1/nodes/{name}/drain`: refuse new placements on the node.
    pub async fn drain(&self, name: &str) -> Result<Node, ClientError> {
        self.http
            .post(&format!("/v1/nodes/{}/drain", path_segment(name)), &())
            .await
    }

    /// `POST /v1/nodes/{name}/activate`: accept placements again.
    pub async fn activate(&self, name: &str) -> Result<Node, ClientError> {
        self.http
            .post(&format!("/v1/nodes/{}/activate", path_segment(name)), &())
            .await
    }

    /// `GET /v1/tasks` with filters.
    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, ClientError> {
        self.http.get("/v1/tasks", Some(filter)).await
    }

    /// `GET /v1/tasks/{id}`.
    pub async fn task(&self, id: &TaskId) -> Result<Task, ClientError> {
        self.http
            .get::<_, ()>(&format!("/v1/tasks/{}", path_segment(id.as_str())), None)
            .await
    }

    /// `POST /v1/tasks`: place a task on a node. Refused with the reason when the node
    /// is not ready or the task does not fit.
    pub async fn launch(&self, req: &LaunchRequest) -> Result<Task, ClientError> {
        self.http.post("/v1/tasks", req).await
    }

    /// `POST /v1/launches`: several launches decided in order and made durable
    /// together; one outcome per launch, in order.
    pub async fn launch_batch(
        &self,
        req: &LaunchBatchRequest,
    ) -> Result<Vec<LaunchOutcome>, ClientError> {
        let resp: LaunchBatchResponse = self.http.post("/v1/launches", req).await?;
        Ok(resp.results)
    }

    /// `POST /v1/tasks/{id}/kill`.
    pub async fn kill(&self, id: &TaskId) -> Result<Task, ClientError> {
        self.http
            .post(
                &format!("/v1/tasks/{}/kill", path_segment(id.as_str())),
                &(),
            )
            .await
    }

    /// `GET /v1/tasks/{id}/logs`: the task's output, proxied from its agent.
    pub async fn logs(
        &self,
        id: &TaskId,
        query: &LogQuery,
    ) -> Result<impl Stream<Item = Result<Bytes, ClientError>> + use<>, ClientError> {
        self.http
            .stream(
                &format!("/v1/tasks/{}/logs", path_segment(id.as_str())),
                query,
            )
            .await
    }

    /// `GET /v1/events`: the event stream, decoded.
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        let url = self.http.url("/v1/events");
        let bytes = self.http.stream("/v1/events", &()).await?;
        Ok(sse_data(bytes).map(move |r| {
            r.and_then(|data| {
                serde_json::from_str::<Event>(&data).map_err(|e| ClientError::Decode {
                    url: url.clone(),
                    message: e.to_string(),
                })
            })
        }))
    }

    /// `POST /v1/agents/register`.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.http.post("/v1/agents/register", req).await
    }

    /// `POST /v1/agents/{name}/heartbeat`.
    pub async fn heartbeat(
        &self,
        name: &str,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.http
            .post(&format!("/v1/agents/{}/heartbeat", path_segment(name)), req)
            .await
    }

    /// `GET /v1/agents/{name}/assignments`: long poll for the node's assignments.
    pub async fn assignments(
        &self,
        name: &str,
        query: &AssignmentsQuery,
    ) -> Result<NodeAssignments, ClientError> {
        let wait = query.wait.unwrap_or(30).min(60);
        self.http
            .get_with_timeout(
                &format!("/v1/agents/{}/assignments", path_segment(name)),
                query,
                Duration::from_secs(wait + 10),
            )
            .await
    }
}

/// An agent's API (the master uses it to proxy log reads).
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: HttpClient,
}

impl AgentClient {
    /// A client for the agent at `base`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        Ok(AgentClient {
            http: HttpClient::new(base, token)?,
        })
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<VersionInfo, ClientError> {
        self.http.get::<_, ()>("/v1/version", None).await
    }

    /// `GET /v1/tasks`: the agent's own view of its tasks.
    pub async fn tasks(&self) -> Result<Vec<crate::task::TaskReport>, ClientError> {
        self.http.get::<_, ()>("/v1/tasks", None).await
    }

    /// `GET /v1/tasks/{id}/logs`.
    pub async fn logs(
        &self,
        id: &TaskId,
        query: &LogQuery,
    ) -> Result<impl Stream<Item = Result<Bytes, ClientError>> + use<>, ClientError> {
        self.http
            .stream(
                &format!("/v1/tasks/{}/logs", path_segment(id.as_str())),
                query,
            )
            .await
    }
}

/// A job with its status: `GET /v1/jobs/{name}`, and each entry of `GET /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetails {
    /// The definition, in Chronos's format.
    pub job: ChronosJob,
    /// Its state, next runs (one in a list), open attempts and statistics.
    pub status: JobStatus,
}

/// The answer to creating or updating a job (`POST /v1/jobs`, `PUT /v1/jobs/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobAccepted {
    /// The job as stored.
    pub job: ChronosJob,
    /// Whether it is new (`201`) rather than an update (`200`).
    pub created: bool,
    /// Fields Drover keeps and returns but does not act on (JSON paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_fields: Vec<String>,
}

/// The body of `POST /v1/jobs/{name}/run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunJobRequest {
    /// Appended to the job's command for this run (and its retries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
}

/// Query of `GET /v1/jobs/{name}/runs/{run}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobLogQuery {
    /// stdout (default) or stderr.
    #[serde(default)]
    pub stream: LogStream,
    /// The attempt; default the run's latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Start at this byte offset; negative counts back from the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// The scheduler's job API (native `/v1/jobs`, plus Chronos's DOT graph).
#[derive(Debug, Clone)]
pub struct SchedulerClient {
    http: HttpClient,
}

impl SchedulerClient {
    /// A client for the scheduler at `base`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        Ok(SchedulerClient {
            http: HttpClient::new(base, token)?,
        })
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<VersionInfo, ClientError> {
        self.http.get::<_, ()>("/v1/version", None).await
    }

    fn job_path(name: &str, rest: &str) -> String {
        format!("/v1/jobs/{}{rest}", path_segment(name))
    }

    /// `GET /v1/jobs`: every job with its state and next run.
    pub async fn jobs(&self) -> Result<Vec<JobDetails>, ClientError> {
        self.http.get::<_, ()>("/v1/jobs", None).await
    }

    /// `GET /v1/jobs/{name}?next=N`: one job with its next `next` runs (default 5).
    pub async fn job(&self, name: &str, next: Option<usize>) -> Result<JobDetails, ClientError> {
        let q: Vec<(&str, String)> = next.map(|n| ("next", n.to_string())).into_iter().collect();
        self.http.get(&Self::job_path(name, ""), Some(&q)).await
    }

    /// `POST /v1/jobs`: creates or updates a job from its Chronos JSON.
    pub async fn put_job(&self, job: &serde_json::Value) -> Result<JobAccepted, ClientError> {
        self.http.post("/v1/jobs", job).await
    }

    /// `DELETE /v1/jobs/{name}`: the job as it was.
    pub async fn delete_job(&self, name: &str) -> Result<ChronosJob, ClientError> {
        self.http
            .send_json::<(), _>(reqwest::Method::DELETE, &Self::job_path(name, ""), None)
            .await
    }

    /// `POST /v1/jobs/{name}/run`: starts a run now; the pending first attempt.
    pub async fn run_job(&self, name: &str, arguments: Vec<String>) -> Result<JobRun, ClientError> {
        self.http
            .post(&Self::job_path(name, "/run"), &RunJobRequest { arguments })
            .await
    }

    /// `POST /v1/jobs/{name}/kill`: kills the job's open runs.
    pub async fn kill_job(&self, name: &str) -> Result<JobStatus, ClientError> {
        self.http.post(&Self::job_path(name, "/kill"), &()).await
    }

    /// `POST /v1/jobs/{name}/success`: counts a success now, so its children fire.
    pub async fn mark_job_success(&self, name: &str) -> Result<JobStatus, ClientError> {
        self.http.post(&Self::job_path(name, "/success"), &()).await
    }

    /// `POST /v1/jobs/{name}/enable`.
    pub async fn enable_job(&self, name: &str) -> Result<JobDetails, ClientError> {
        self.http.post(&Self::job_path(name, "/enable"), &()).await
    }

    /// `POST /v1/jobs/{name}/disable`.
    pub async fn disable_job(&self, name: &str) -> Result<JobDetails, ClientError> {
        self.http.post(&Self::job_path(name, "/disable"), &()).await
    }

    /// `GET /v1/jobs/{name}/runs?limit=N`: run records (attempts), newest first.
    pub async fn job_runs(
        &self,
        name: &str,
        limit: Option<usize>,
    ) -> Result<Vec<JobRun>, ClientError> {
        let q: Vec<(&str, String)> = limit
            .map(|n| ("limit", n.to_string()))
            .into_iter()
            .collect();
        self.http
            .get(&Self::job_path(name, "/runs"), Some(&q))
            .await
    }

    /// `GET /v1/jobs/{name}/stats`.
    pub async fn job_stats(&self, name: &str) -> Result<JobStats, ClientError> {
        self.http
            .get::<_, ()>(&Self::job_path(name, "/stats"), None)
            .await
    }

    /// `GET /v1/jobs/{name}/runs/{run}/logs`: a run's output (`run` is its number, its
    /// id, or `latest`), proxied from the master.
    pub async fn job_logs(
        &self,
        name: &str,
        run: &str,
        query: &JobLogQuery,
    ) -> Result<impl Stream<Item = Result<Bytes, ClientError>> + use<>, ClientError> {
        self.http
            .stream(
                &Self::job_path(name, &format!("/runs/{}/logs", path_segment(run))),
                query,
            )
            .await
    }

    /// `GET /scheduler/graph/dot`: the jobs' parent graph in Graphviz DOT.
    pub async fn job_graph_dot(&self) -> Result<String, ClientError> {
        let mut stream = std::pin::pin!(self.http.stream("/scheduler/graph/dot", &()).await?);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// An app with its status: `GET /v1/apps/{id}`, and each entry of `GET /v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDetails {
    /// The definition in force (its `version` set).
    pub app: crate::app::AppDefinition,
    /// What runs, what cannot be placed and why, the backoff; absent until the
    /// scheduler has looked at the cluster once for this app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::deployment::AppStatus>,
    /// The app's running deployment, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<crate::deployment::Deployment>,
    /// A delete is stopping the app's instances.
    #[serde(default)]
    pub deleting: bool,
}

/// The answer to a change of an app (create, update, scale, restart, rollback, delete).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppChanged {
    /// The app's definition after the change.
    pub app: crate::app::AppDefinition,
    /// The deployment that carries the change out.
    pub deployment: crate::deployment::Deployment,
    /// Whether the app is new.
    pub created: bool,
    /// Running deployments this one superseded (with `force`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<crate::deployment::DeploymentId>,
    /// Fields of the definition Drover keeps but does not act on (JSON paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

/// The body of `POST /v1/apps/{id}/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRequest {
    /// Instances wanted.
    pub instances: u32,
}

/// The body of `POST /v1/apps/{id}/rollback`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRequest {
    /// The version to go back to; default the app's last fully healthy version other
    /// than the current one, else the one before the current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `GET /v1/apps/{id}/versions`: the stored versions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppVersions {
    /// The version stamps.
    pub versions: Vec<String>,
}

/// The answer to `DELETE /v1/deployments/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCancelled {
    /// The deployment, now failed.
    pub deployment: crate::deployment::Deployment,
    /// The rollback begun instead (when the app has `autoRevert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<crate::deployment::Deployment>,
}

/// The `?force=true` query of the app changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForceQuery {
    /// Supersede a running deployment of the app instead of refusing (409).
    #[serde(default)]
    pub force: bool,
}

/// The path of an app under `prefix` (`/v1/apps`): each segment of the id escaped.
pub fn app_path(prefix: &str, id: &str, rest: &str) -> String {
    let segments: Vec<String> = id
        .split('/')
        .filter(|s| !s.is_empty())
        .map(path_segment)
        .collect();
    format!("{prefix}/{}{rest}", segments.join("/"))
}

/// The scheduler's app and deployment API (native `/v1/apps`, `/v1/deployments`).
impl SchedulerClient {
    /// `GET /v1/apps`: every app with its status.
    pub async fn apps(&self) -> Result<Vec<AppDetails>, ClientError> {
        self.http.get::<_, ()>("/v1/apps", None).await
    }

    /// `GET /v1/apps/{id}`.
    pub async fn app(&self, id: &str) -> Result<AppDetails, ClientError> {
        self.http
            .get::<_, ()>(&app_path("/v1/apps", id, ""), None)
            .await
    }

    fn force_suffix(force: bool) -> &'static str {
        if force { "?force=true" } else { "" }
    }

    /// `POST /v1/apps`: creates an app from its Marathon JSON (409 when it exists).
    pub async fn create_app(
        &self,
        app: &serde_json::Value,
        force: bool,
    ) -> Result<AppChanged, ClientError> {
        self.http
            .post(&format!("/v1/apps{}", Self::force_suffix(force)), app)
            .await
    }

    /// `PUT /v1/apps/{id}`: creates or updates an app from its Marathon JSON.
    pub async fn put_app(
        &self,
        id: &str,
        app: &serde_json::Value,
        force: bool,
    ) -> Result<AppChanged, ClientError> {
        let path = app_path("/v1/apps", id, Self::force_suffix(force));
        self.http
            .send_json(reqwest::Method::PUT, &path, Some(app))
            .await
    }

    /// `POST /v1/apps/{id}/scale`.
    pub async fn scale_app(
        &self,
        id: &str,
        instances: u32,
        force: bool,
    ) -> Result<AppChanged, ClientError> {
        let path = app_path(
            "/v1/apps",
            id,
            &format!("/scale{}", Self::force_suffix(force)),
        );
        self.http.post(&path, &ScaleRequest { instances }).await
    }

    /// `POST /v1/apps/{id}/restart`.
    pub async fn restart_app(&self, id: &str, force: bool) -> Result<AppChanged, ClientError> {
        let path = app_path(
            "/v1/apps",
            id,
            &format!("/restart{}", Self::force_suffix(force)),
        );
        self.http.post(&path, &()).await
    }

    /// `POST /v1/apps/{id}/rollback`: back to `version` (default: see [`RollbackRequest`]).
    pub async fn rollback_app(
        &self,
        id: &str,
        version: Option<String>,
        force: bool,
    ) -> Result<AppChanged, ClientError> {
        let path = app_path(
            "/v1/apps",
            id,
            &format!("/rollback{}", Self::force_suffix(force)),
        );
        self.http.post(&path, &RollbackRequest { version }).await
    }

    /// `DELETE /v1/apps/{id}`: stops every instance, then removes the app.
    pub async fn delete_app(&self, id: &str, force: bool) -> Result<AppChanged, ClientError> {
        let path = app_path("/v1/apps", id, Self::force_suffix(force));
        self.http
            .send_json::<(), _>(reqwest::Method::DELETE, &path, None)
            .await
    }

    /// `GET /v1/apps/{id}/versions`.
    pub async fn app_versions(&self, id: &str) -> Result<AppVersions, ClientError> {
        self.http
            .get::<_, ()>(&app_path("/v1/apps", id, "/versions"), None)
            .await
    }

    /// `GET /v1/apps/{id}/tasks`: the app's active tasks.
    pub async fn app_tasks(&self, id: &str) -> Result<Vec<Task>, ClientError> {
        self.http
            .get::<_, ()>(&app_path("/v1/apps", id, "/tasks"), None)
            .await
    }

    /// `GET /v1/deployments`: running deployments and recent history, newest first.
    pub async fn deployments(&self) -> Result<Vec<crate::deployment::Deployment>, ClientError> {
        self.http.get::<_, ()>("/v1/deployments", None).await
    }

    /// `GET /v1/deployments/{id}`.
    pub async fn deployment(&self, id: &str) -> Result<crate::deployment::Deployment, ClientError> {
        self.http
            .get::<_, ()>(&format!("/v1/deployments/{}", path_segment(id)), None)
            .await
    }

    /// `DELETE /v1/deployments/{id}`: cancels a running deployment (it fails now; with
    /// `autoRevert` the app rolls back).
    pub async fn cancel_deployment(&self, id: &str) -> Result<DeploymentCancelled, ClientError> {
        let path = format!("/v1/deployments/{}", path_segment(id));
        self.http
            .send_json::<(), _>(reqwest::Method::DELETE, &path, None)
            .await
    }
}

/// Splits a Server-Sent Events byte stream into the `data:` payload of each event.
pub fn sse_data<S>(bytes: S) -> impl Stream<Item = Result<String, ClientError>>
where
    S: Stream<Item = Result<Bytes, ClientError>>,
{
    futures::stream::unfold(
        (Box::pin(bytes), Vec::<u8>::new(), false),
        |(mut bytes, mut buf, done)| async move {
            loop {
                // An event ends at a blank line.
                if let Some(pos) = find_event_end(&buf) {
                    let raw: Vec<u8> = buf.drain(..pos.0 + pos.1).collect();
                    let text = String::from_utf8_lossy(&raw[..pos.0]).into_owned();
                    let data: Vec<&str> = text
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(|d| d.strip_prefix(' ').unwrap_or(d))
                        .collect();
                    if data.is_empty() {
                        continue; // a comment or keep-alive
                    }
                    return Some((Ok(data.join("\n")), (bytes, buf, done)));
                }
                if done {
                    return None;
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    Some(Err(e)) => return Some((Err(e), (bytes, buf, true))),
                    None => return None,
                }
            }
        },
    )
}

/// Position and length of the first blank-line separator (`\n\n` or `\r\n\r\n`).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sse_splits_events_across_chunks() {
        let chunks: Vec<Result<Bytes, ClientError>> = vec![
            Ok(Bytes::from_static(
                b": keep-alive\n\nevent: x\ndata: {\"a\"",
            )),
            Ok(Bytes::from_static(b":1}\n\ndata: two\n")),
            Ok(Bytes::from_static(b"\n")),
        ];
        let out: Vec<String> = sse_data(futures::stream::iter(chunks))
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(out, vec!["{\"a\":1}".to_string(), "two".to_string()]);
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("web.1"), "web.1");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
