//! `hello`: a tiny web service for Drover's examples and tests.
//!
//! - `GET /` answers `hello from <task id> version <version>`;
//! - `GET /health` answers 200 `ok`, or 503 `failing` while failing;
//! - `POST /fail` makes `/health` fail, `POST /recover` makes it pass again.
//!
//! `/health` also fails while the file named by `HELLO_HEALTH_FILE` exists, and from the
//! start when `HELLO_FAIL_HEALTH=1`. The binary (`main.rs`) only picks the address,
//! prints `listening on http://ADDR` and serves until SIGTERM or SIGINT.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

/// What the service says about itself and how its health starts out.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shown by `GET /`; from `DROVER_TASK_ID`, else `-`.
    pub task_id: String,
    /// Shown by `GET /`; from `DROVER_VERSION`, else `HELLO_VERSION`, else `-`.
    pub version: String,
    /// `/health` fails while this file exists (`HELLO_HEALTH_FILE`).
    pub health_file: Option<PathBuf>,
    /// Start with `/health` failing (`HELLO_FAIL_HEALTH=1`).
    pub fail_health: bool,
}

impl Default for Config {
    /// `-` for the task id and the version, health passing, no health file.
    fn default() -> Self {
        Config {
            task_id: "-".into(),
            version: "-".into(),
            health_file: None,
            fail_health: false,
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |k: &str| lookup(k).filter(|v| !v.is_empty());
        Config {
            task_id: set("DROVER_TASK_ID").unwrap_or_else(|| "-".into()),
            version: set("DROVER_VERSION")
                .or_else(|| set("HELLO_VERSION"))
                .unwrap_or_else(|| "-".into()),
            health_file: set("HELLO_HEALTH_FILE").map(PathBuf::from),
            fail_health: set("HELLO_FAIL_HEALTH")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
        }
    }
}

/// The port to listen on: `--port`, else `$PORT0`, else `$PORT`, else 8000.
pub fn choose_port(
    flag: Option<&str>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<u16, String> {
    let (source, value) = match flag {
        Some(v) => ("--port", v.to_string()),
        None => match (
            lookup("PORT0").filter(|v| !v.is_empty()),
            lookup("PORT").filter(|v| !v.is_empty()),
        ) {
            (Some(v), _) => ("PORT0", v),
            (None, Some(v)) => ("PORT", v),
            (None, None) => return Ok(8000),
        },
    };
    value
        .trim()
        .parse()
        .map_err(|_| format!("{source}: {value:?} is not a port number"))
}

/// Shared by the handlers.
struct AppState {
    config: Config,
    /// Set by `POST /fail` (or `HELLO_FAIL_HEALTH`), cleared by `POST /recover`.
    failing: AtomicBool,
}

/// The service's routes.
pub fn router(config: Config) -> Router {
    let failing = AtomicBool::new(config.fail_health);
    let state = Arc::new(AppState { config, failing });
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/fail", post(fail))
        .route("/recover", post(recover))
        .with_state(state)
}

/// Serves `router(config)` on `listener` until `shutdown` resolves, then lets requests
/// in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn root(State(s): State<Arc<AppState>>) -> String {
    format!(
        "hello from {} version {}\n",
        s.config.task_id, s.config.version
    )
}

async fn health(State(s): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    let file_says_fail = s.config.health_file.as_ref().is_some_and(|p| p.exists());
    if s.failing.load(Ordering::SeqCst) || file_says_fail {
        (StatusCode::SERVICE_UNAVAILABLE, "failing")
    } else {
        (StatusCode::OK, "ok")
    }
}

async fn fail(State(s): State<Arc<AppState>>) -> &'static str {
    s.failing.store(true, Ordering::SeqCst);
    println!("health set to failing");
    "health now failing\n"
}

async fn recover(State(s): State<Arc<AppState>>) -> &'static str {
    s.failing.store(false, Ordering::SeqCst);
    println!("health set to passing");
    "health now passing\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn port_precedence() {
        assert_eq!(
            choose_port(Some("9"), env(&[("PORT0", "1"), ("PORT", "2")])),
            Ok(9)
        );
        assert_eq!(
            choose_port(None, env(&[("PORT0", "1"), ("PORT", "2")])),
            Ok(1)
        );
        assert_eq!(choose_port(None, env(&[("PORT", "2")])), Ok(2));
        assert_eq!(choose_port(None, env(&[])), Ok(8000));
        assert!(choose_port(None, env(&[("PORT0", "http")])).is_err());
        assert!(choose_port(Some("70000"), env(&[])).is_err());
    }

    #[test]
    fn config_from_env() {
        let c = Config::from_lookup(env(&[("HELLO_VERSION", "h1"), ("HELLO_FAIL_HEALTH", "1")]));
        assert_eq!(
            (c.task_id.as_str(), c.version.as_str(), c.fail_health),
            ("-", "h1", true)
        );
        let c = Config::from_lookup(env(&[
            ("DROVER_TASK_ID", "t.1"),
            ("DROVER_VERSION", "v2"),
            ("HELLO_VERSION", "h1"),
        ]));
        assert_eq!(
            (c.task_id.as_str(), c.version.as_str(), c.fail_health),
            ("t.1", "v2", false)
        );
    }
}
