//! The `drover-agent` binary itself: announces its address first, serves the shared
//! routes, reads a config file, refuses wide binds without a token, stops on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Agent {
    child: Child,
    base: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Agent {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover-agent"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line was {line:?}"))
        .to_string();
    Agent { child, base }
}

#[tokio::test]
async fn serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "name = \"from-config\"\nresource_interval = 1\n").unwrap();
    let work = dir.path().join("work");
    let mut agent = start(&[
        "--listen",
        "127.0.0.1:0",
        "--master",
        "http://127.0.0.1:1",
        "--work-dir",
        work.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(agent.base.starts_with("http://127.0.0.1:"));
    let health: serde_json::Value = reqwest::get(format!("{}/health", agent.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let version: serde_json::Value = reqwest::get(format!("{}/v1/version", agent.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["name"], "drover-agent");
    let missing = reqwest::get(format!("{}/v1/nope", agent.base))
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert!(work.join("tasks").is_dir());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn refuses_a_wide_bind_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_drover-agent"))
        .args([
            "--listen",
            "0.0.0.0:0",
            "--work-dir",
            dir.path().to_str().unwrap(),
        ])
        .env_remove("DROVER_TOKEN")
        .env_remove("DROVER_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a token"));
}

#[test]
fn rejects_unknown_config_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "mastr = \"http://x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_drover-agent"))
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key \"mastr\""));
}
