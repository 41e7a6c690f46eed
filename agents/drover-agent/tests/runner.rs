//! The task runner with real processes, through the real shim binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use drover_agent::reconcile::{self, Action};
use drover_api::TaskId;
use drover_api::agent::TaskAssignment;
use drover_api::task::{PortRequest, TaskGoal, TaskState};

#[tokio::test]
async fn output_lands_in_the_sandbox_and_exit_zero_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    r.launch(spec(
        "hello.1",
        "echo line one; echo line two; echo oops >&2",
    ));
    let rep = wait_terminal(&r, "hello.1").await;
    assert_eq!(rep.state, TaskState::Finished, "{rep:?}");
    assert_eq!(rep.exit.unwrap().code, Some(0));
    assert!(rep.pid.is_some() && rep.started_at.is_some() && rep.finished_at.is_some());
    let sb = dir.path().join("tasks/hello.1");
    assert_eq!(
        std::fs::read_to_string(sb.join("stdout")).unwrap(),
        "line one\nline two\n"
    );
    assert_eq!(
        std::fs::read_to_string(sb.join("stderr")).unwrap(),
        "oops\n"
    );
    assert!(
        sb.join("task.json").exists()
            && sb.join("pid.json").exists()
            && sb.join("exit.json").exists()
    );
}

#[tokio::test]
async fn exit_codes_signals_and_spawn_errors_fail() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    r.launch(spec("code.1", "exit 3"));
    r.launch(spec("sig.1", "kill -9 $$"));
    let mut bad = spec("nope.1", "unused");
    bad.definition.cmd = None;
    bad.definition.args = Some(vec!["/nonexistent/program".into(), "x".into()]);
    r.launch(bad);
    let rep = wait_terminal(&r, "code.1").await;
    assert_eq!(
        (rep.state, rep.exit.unwrap().code),
        (TaskState::Failed, Some(3))
    );
    assert_eq!(rep.message.as_deref(), Some("exited with code 3"));
    let rep = wait_terminal(&r, "sig.1").await;
    assert_eq!(
        (rep.state, rep.exit.unwrap().signal),
        (TaskState::Failed, Some(9))
    );
    let rep = wait_terminal(&r, "nope.1").await;
    assert_eq!(rep.state, TaskState::Failed);
    assert!(
        rep.message
            .as_deref()
            .unwrap()
            .contains("cannot start \"/nonexistent/program\""),
        "{rep:?}"
    );
    assert!(rep.pid.is_none());
}

#[tokio::test]
async fn args_run_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let mut s = spec("args.1", "unused");
    s.definition.cmd = None;
    s.definition.args = Some(vec!["/bin/echo".into(), "$HOME stays literal".into()]);
    r.launch(s);
    assert_eq!(wait_terminal(&r, "args.1").await.state, TaskState::Finished);
    assert_eq!(
        std::fs::read_to_string(stdout_of(dir.path(), "args.1")).unwrap(),
        "$HOME stays literal\n"
    );
}

#[tokio::test]
async fn environment_carries_ports_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let mut s = spec("envy.1", "env");
    s.definition.ports = vec![
        PortRequest {
            name: Some("http".into()),
            port: 0,
        },
        PortRequest {
            name: None,
            port: 0,
        },
    ];
    s.host_ports = vec![31005, 31006];
    s.definition
        .env
        .insert("GREETING".into(), "hi there".into());
    s.definition
        .labels
        .insert(drover_api::task::labels::APP_ID.into(), "/shop/web".into());
    r.launch(s);
    assert_eq!(wait_terminal(&r, "envy.1").await.state, TaskState::Finished);
    let out = std::fs::read_to_string(stdout_of(dir.path(), "envy.1")).unwrap();
    let sandbox = dir.path().join("tasks/envy.1");
    for line in [
        "PORT0=31005".to_string(),
        "PORT1=31006".to_string(),
        "PORT=31005".to_string(),
        "PORTS=31005,31006".to_string(),
        "PORT_HTTP=31005".to_string(),
        "DROVER_TASK_ID=envy.1".to_string(),
        "MESOS_TASK_ID=envy.1".to_string(),
        "DROVER_APP_ID=/shop/web".to_string(),
        "MARATHON_APP_ID=/shop/web".to_string(),
        "HOST=127.0.0.1".to_string(),
        "GREETING=hi there".to_string(),
        format!("MESOS_SANDBOX={}", sandbox.display()),
        format!("DROVER_SANDBOX={}", sandbox.display()),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(
        !out.contains("CARGO_"),
        "the agent's environment leaked into the task:\n{out}"
    );
}

#[tokio::test]
async fn kill_sends_sigterm_to_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    r.launch(spec(
        "term.1",
        "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.05; done",
    ));
    wait_state(&r, "term.1", TaskState::Running).await;
    wait_file_contains(&stdout_of(dir.path(), "term.1"), "ready").await;
    assert!(r.kill(&TaskId::from("term.1"), "test asked"));
    let rep = wait_terminal(&r, "term.1").await;
    assert_eq!(rep.state, TaskState::Killed, "{rep:?}");
    assert!(rep.message.as_deref().unwrap().starts_with("test asked"));
    wait_file_contains(&stdout_of(dir.path(), "term.1"), "got-term").await;
    // The sleeping child was in the group too: nothing of the task is left.
    let pgid = rep.pid.unwrap();
    assert!(nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid as i32), None).is_err());
}

#[tokio::test]
async fn a_task_ignoring_sigterm_gets_sigkill_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let mut s = spec("stubborn.1", "trap '' TERM; echo ready; sleep 60");
    s.definition.kill_grace_period_seconds = 0.5;
    r.launch(s);
    wait_state(&r, "stubborn.1", TaskState::Running).await;
    wait_file_contains(&stdout_of(dir.path(), "stubborn.1"), "ready").await;
    r.kill(&TaskId::from("stubborn.1"), "test asked");
    let rep = wait_terminal(&r, "stubborn.1").await;
    assert_eq!(rep.state, TaskState::Killed);
    assert_eq!(rep.exit.unwrap().signal, Some(9), "{rep:?}");
}

#[tokio::test]
async fn containers_are_refused_with_a_reason_without_a_docker_engine() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let mut s = spec("docker.1", "unused");
    s.definition.container =
        Some(serde_json::json!({"type": "DOCKER", "docker": {"image": "nginx"}}));
    r.launch(s);
    let rep = wait_terminal(&r, "docker.1").await;
    assert_eq!(rep.state, TaskState::Failed);
    assert_eq!(
        rep.message.as_deref(),
        Some(drover_agent::runner::NO_ENGINE)
    );
}

#[tokio::test]
async fn user_is_honoured_or_refused() {
    use drover_agent::task_user::{self, TaskUserFlags};
    let dir = tempfile::tempdir().unwrap();
    // As the agent proper decides: `nobody` allowed, root not.
    let users = task_user::check_flags(
        &TaskUserFlags {
            task_user: None,
            allowed: vec!["nobody".into()],
            allow_root: false,
        },
        &task_user::current(),
        task_user::lookup,
    );
    let root = nix::unistd::geteuid().is_root();
    let (true, Ok(users)) = (root, &users) else {
        assert!(!root, "a root agent may allow nobody: {users:?}");
        // Not root: naming another user is refused at start (unless it is the agent's
        // own); per task, too.
        let r = runner(dir.path());
        let mut s = spec("who.1", "id -u");
        s.definition.user = Some("root".into());
        r.launch(s);
        let rep = wait_terminal(&r, "who.1").await;
        assert_eq!(rep.state, TaskState::Failed);
        assert!(rep.message.unwrap().contains("is not root"));
        return;
    };
    let users = users.clone();
    let mut cfg = drover_agent::RunnerConfig::new(
        dir.path(),
        env!("CARGO_BIN_EXE_drover-agent"),
        "127.0.0.1",
    );
    cfg.poll_interval = Duration::from_millis(50);
    cfg.task_users = users.clone();
    let r = drover_agent::TaskRunner::start(cfg).unwrap();
    let mut s = spec("who.1", "id -u; id -G; touch mine");
    s.definition.user = Some("nobody".into());
    r.launch(s);
    let mut s = spec("root.1", "id -u");
    s.definition.user = Some("root".into());
    r.launch(s);
    r.launch(spec("default.1", "id -u"));
    let rep = wait_terminal(&r, "who.1").await;
    assert_eq!(rep.state, TaskState::Finished, "{rep:?}");
    let nobody = task_user::lookup("nobody").unwrap();
    let out = std::fs::read_to_string(stdout_of(dir.path(), "who.1")).unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(nobody.uid.to_string().as_str()));
    // Exactly the user's groups: none of the agent's (root's) are left over.
    let mut groups: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    let mut want = nobody.groups.clone();
    groups.sort_unstable();
    want.sort_unstable();
    want.dedup();
    assert_eq!(groups, want);
    let rep = wait_terminal(&r, "root.1").await;
    assert_eq!(rep.state, TaskState::Failed);
    assert!(
        rep.message.unwrap().contains("--allow-root-tasks"),
        "the refusal names the flag"
    );
    let rep = wait_terminal(&r, "default.1").await;
    assert_eq!(rep.state, TaskState::Finished, "{rep:?}");
    let out = std::fs::read_to_string(stdout_of(dir.path(), "default.1")).unwrap();
    assert_eq!(out.trim(), users.default.uid.to_string());
}

#[tokio::test]
async fn reconcile_launches_keeps_unlisted_kills_on_request_and_forgets_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let wanted = vec![TaskAssignment {
        spec: spec("svc.1", "sleep 60"),
        goal: TaskGoal::Run,
    }];
    assert_eq!(
        r.reconcile(&wanted),
        vec![Action::Launch(wanted[0].spec.clone())]
    );
    assert!(
        r.reconcile(&wanted).is_empty(),
        "reconcile must be idempotent"
    );
    wait_state(&r, "svc.1", TaskState::Running).await;
    // The master stops listing it (it lost its record): it keeps running.
    assert!(r.reconcile(&[]).is_empty());
    assert!(r.is_active(&TaskId::from("svc.1")));
    // The master says kill: it is killed.
    let kill = vec![TaskAssignment {
        spec: spec("svc.1", "sleep 60"),
        goal: TaskGoal::Kill,
    }];
    r.reconcile(&kill);
    let rep = wait_terminal(&r, "svc.1").await;
    assert_eq!(rep.state, TaskState::Killed);
    assert!(rep.message.unwrap().starts_with(reconcile::KILL_ASKED));
    // Still unlisted once terminal: forgotten, and not reported after a restart either.
    assert_eq!(
        r.reconcile(&[]),
        vec![Action::Forget(TaskId::from("svc.1"))]
    );
    assert!(r.reports().is_empty());
    r.detach();
    let r2 = runner(dir.path());
    assert!(r2.reports().is_empty());
    // Listed again (a confused master): reported as it ended, never run twice.
    r2.reconcile(&wanted);
    assert_eq!(
        r2.report(&TaskId::from("svc.1")).unwrap().state,
        TaskState::Killed
    );
    // Forgotten again, its sandbox goes once old enough (here: at once).
    r2.reconcile(&[]);
    assert_eq!(r2.collect_garbage(Duration::from_secs(3600)), 0);
    assert_eq!(r2.collect_garbage(Duration::ZERO), 1);
    assert!(!dir.path().join("tasks/svc.1").exists());
}

#[tokio::test]
async fn a_kill_for_an_unknown_task_is_recorded_as_killed() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    r.reconcile(&[TaskAssignment {
        spec: spec("ghost.1", "sleep 60"),
        goal: TaskGoal::Kill,
    }]);
    let rep = wait_terminal(&r, "ghost.1").await;
    assert_eq!(rep.state, TaskState::Killed);
    assert!(rep.pid.is_none());
}

#[tokio::test]
async fn a_running_task_is_readopted_by_a_new_runner() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = runner(dir.path());
    r1.launch(spec(
        "long.1",
        "echo up; while [ ! -f stop ]; do sleep 0.05; done; echo bye; exit 7",
    ));
    let first = wait_state(&r1, "long.1", TaskState::Running).await;
    // The agent goes away (its jobs stop; the shim and task do not).
    r1.detach();
    drop(r1);
    let r2 = runner(dir.path());
    let adopted = r2.report(&TaskId::from("long.1")).unwrap();
    assert_eq!(adopted.state, TaskState::Running);
    assert_eq!(adopted.pid, first.pid, "same process");
    assert_eq!(adopted.started_at, first.started_at);
    std::fs::write(dir.path().join("tasks/long.1/stop"), b"").unwrap();
    let rep = wait_terminal(&r2, "long.1").await;
    assert_eq!(
        (rep.state, rep.exit.unwrap().code),
        (TaskState::Failed, Some(7)),
        "{rep:?}"
    );
    assert!(
        std::fs::read_to_string(stdout_of(dir.path(), "long.1"))
            .unwrap()
            .contains("bye")
    );
}

#[tokio::test]
async fn a_readopted_task_can_still_be_killed() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = runner(dir.path());
    r1.launch(spec("k.1", "sleep 60"));
    wait_state(&r1, "k.1", TaskState::Running).await;
    r1.detach();
    drop(r1);
    let r2 = runner(dir.path());
    assert!(r2.kill(&TaskId::from("k.1"), "killed after restart"));
    let rep = wait_terminal(&r2, "k.1").await;
    assert_eq!(rep.state, TaskState::Killed);
    assert_eq!(rep.exit.unwrap().signal, Some(15));
}

#[tokio::test]
async fn a_process_gone_while_the_agent_was_down_is_failed() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = runner(dir.path());
    r1.launch(spec("gone.1", "sleep 60"));
    let rep = wait_state(&r1, "gone.1", TaskState::Running).await;
    r1.detach();
    drop(r1);
    // Simulate the whole thing dying uncleanly: shim and task killed, no exit record.
    let sb = dir.path().join("tasks/gone.1");
    let shim: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.join("shim.json")).unwrap()).unwrap();
    let shim_pid = shim["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(rep.pid.unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Wait for the task process to disappear (it is the shim's child; init reaps it).
    let stat = format!("/proc/{}/stat", rep.pid.unwrap());
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z")) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_file(sb.join("exit.json"));
    let r2 = runner(dir.path());
    let rep = wait_terminal(&r2, "gone.1").await;
    assert_eq!(rep.state, TaskState::Failed);
    let msg = rep.message.unwrap();
    assert!(
        msg == drover_agent::outcome::VANISHED || msg.contains("executor"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_recycled_pid_is_not_mistaken_for_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let sb = drover_agent::sandbox::Sandbox::new(dir.path(), &TaskId::from("old.1"));
    sb.create().unwrap();
    let cp = drover_agent::sandbox::Checkpoint {
        spec: spec("old.1", "sleep 60"),
        goal: TaskGoal::Run,
        launch: None,
        created_at: chrono::Utc::now(),
        kill_reason: None,
    };
    sb.write_checkpoint(&cp).unwrap();
    // Our own pid, with a start time that is not ours: a reused pid.
    let me = drover_agent::procfs::current_process().unwrap();
    let fake = drover_agent::sandbox::ProcessRecord {
        pid: me.pid,
        start_time: me.start_time + 12345,
    };
    sb.write_pid(&drover_agent::sandbox::PidRecord {
        process: fake,
        started_at: chrono::Utc::now(),
    })
    .unwrap();
    sb.write_shim(&fake).unwrap();
    let r = runner(dir.path());
    let rep = r.report(&TaskId::from("old.1")).unwrap();
    assert_eq!(rep.state, TaskState::Failed);
    assert_eq!(
        rep.message.as_deref(),
        Some(drover_agent::outcome::VANISHED)
    );
    // The verdict is checkpointed: the next start agrees without looking at /proc.
    assert!(sb.read_exit().unwrap().is_some());
}
