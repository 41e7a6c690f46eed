//! The binary against a closed port: a clear message and a non-zero exit.

use std::process::Command;

fn drover(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .env_remove("DROVER_MASTER")
        .env_remove("DROVER_TOKEN")
        .env_remove("DROVER_TOKEN_FILE")
        .output()
        .expect("run drover")
}

#[test]
fn a_closed_port_is_reported_as_unreachable() {
    for args in [
        &["--master", "http://127.0.0.1:1", "nodes"][..],
        &["tasks", "--master", "http://127.0.0.1:1"][..],
        &["tasks", "show", "t.1", "--master", "http://127.0.0.1:1"][..],
        &[
            "tasks",
            "launch",
            "--node",
            "n1",
            "--master",
            "http://127.0.0.1:1",
            "--",
            "sleep",
            "1",
        ][..],
    ] {
        let out = drover(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: cannot reach the master at http://127.0.0.1:1"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn version_works_without_a_master() {
    let out = drover(&["version", "--master", "http://127.0.0.1:1"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("drover {}", drover_api::VERSION)),
        "{stdout}"
    );
    assert!(stdout.contains("cannot reach"), "{stdout}");
}

#[test]
fn a_bad_master_url_and_a_missing_token_file_are_errors() {
    let out = drover(&["nodes", "--master", "127.0.0.1:5050"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid master URL"));
    let out = drover(&["nodes", "--token-file", "/nonexistent/drover-token"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("failed to read token file /nonexistent/drover-token")
    );
}
