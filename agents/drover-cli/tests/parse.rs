//! The command line's shape: trailing commands, --argv, ports, env, global options anywhere.

use clap::Parser;
use drover_api::TaskState;
use drover_api::task::HealthProtocol;
use drover_cli::cli::{Cli, Command, NodesCommand, TaskLaunchArgs, TasksCommand};
use drover_cli::commands::task_launch;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("drover").chain(args.iter().copied()))
}

fn launch(args: &[&str]) -> TaskLaunchArgs {
    let mut full = vec!["tasks", "launch"];
    full.extend_from_slice(args);
    match parse(&full).expect("parses").command {
        Command::Tasks(t) => match t.command {
            Some(TasksCommand::Launch(l)) => *l,
            other => panic!("not a launch: {other:?}"),
        },
        other => panic!("not tasks: {other:?}"),
    }
}

#[test]
fn trailing_words_become_one_shell_command() {
    let args = launch(&[
        "--node", "n1", "--", "sleep", "60", "&&", "echo", "-n", "done",
    ]);
    assert_eq!(args.command, ["sleep", "60", "&&", "echo", "-n", "done"]);
    let req = task_launch::request(&args).expect("request");
    assert_eq!(req.node, "n1");
    assert_eq!(req.task.cmd.as_deref(), Some("sleep 60 && echo -n done"));
    assert_eq!(req.task.args, None);
    assert_eq!(req.task.name, "sleep");
    assert_eq!(req.task.kill_grace_period_seconds, 5.0);
    assert_eq!(
        (
            req.task.resources.cpus,
            req.task.resources.mem,
            req.task.resources.disk
        ),
        (0.1, 32.0, 0.0)
    );
    req.task.validate("task.").expect("the definition is valid");
}

#[test]
fn the_command_may_follow_options_without_a_separator() {
    let args = launch(&["--node", "n1", "--cpus", "0.5", "sh", "-c", "echo hi"]);
    assert_eq!(args.command, ["sh", "-c", "echo hi"]);
    assert_eq!(args.cpus, 0.5);
}

#[test]
fn argv_keeps_the_words_apart() {
    let args = launch(&[
        "--node",
        "n1",
        "--argv",
        "--name",
        "web",
        "--",
        "/bin/echo",
        "a b",
        "c",
    ]);
    let req = task_launch::request(&args).expect("request");
    assert_eq!(req.task.cmd, None);
    assert_eq!(
        req.task.args,
        Some(vec!["/bin/echo".to_string(), "a b".into(), "c".into()])
    );
    assert_eq!(req.task.name, "web");
}

#[test]
fn ports_may_be_named_or_not() {
    let args = launch(&[
        "--node",
        "n1",
        "--port",
        "--port",
        "http",
        "--port=admin",
        "--",
        "hello",
    ]);
    assert_eq!(args.ports, ["", "http", "admin"]);
    let req = task_launch::request(&args).expect("request");
    let names: Vec<Option<&str>> = req.task.ports.iter().map(|p| p.name.as_deref()).collect();
    assert_eq!(names, [None, Some("http"), Some("admin")]);
    assert!(req.task.ports.iter().all(|p| p.port == 0));
    assert!(
        parse(&[
            "tasks", "launch", "--node", "n1", "--port", "a b", "--", "x"
        ])
        .is_err()
    );
}

#[test]
fn env_and_labels_need_key_value() {
    let args = launch(&[
        "--node", "n1", "--env", "A=1", "-e", "B==x", "--env", "EMPTY=", "--label", "team=web",
        "--", "x",
    ]);
    let req = task_launch::request(&args).expect("request");
    assert_eq!(req.task.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(req.task.env.get("B").map(String::as_str), Some("=x"));
    assert_eq!(req.task.env.get("EMPTY").map(String::as_str), Some(""));
    assert_eq!(req.task.labels.get("team").map(String::as_str), Some("web"));
    for bad in ["NOVALUE", "=1"] {
        let err =
            parse(&["tasks", "launch", "--node", "n1", "--env", bad, "--", "x"]).expect_err(bad);
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
    }
    assert!(parse(&["tasks", "launch", "--node", "n1", "--label", "x", "--", "x"]).is_err());
}

#[test]
fn launch_needs_a_node_and_a_command() {
    assert!(parse(&["tasks", "launch", "--", "sleep", "1"]).is_err());
    assert!(parse(&["tasks", "launch", "--node", "n1"]).is_err());
}

#[test]
fn health_flags_build_one_check() {
    let args = launch(&[
        "--node",
        "n1",
        "--port",
        "--health-http",
        "/health",
        "--health-interval",
        "2",
        "--health-grace",
        "10",
        "--health-timeout",
        "1",
        "--health-max-failures",
        "5",
        "--",
        "hello",
    ]);
    let req = task_launch::request(&args).expect("request");
    let hc = &req.task.health_checks[0];
    assert_eq!(hc.protocol, HealthProtocol::Http);
    assert_eq!(hc.path.as_deref(), Some("/health"));
    assert_eq!(
        (
            hc.interval_seconds,
            hc.grace_period_seconds,
            hc.timeout_seconds
        ),
        (2.0, 10.0, 1.0)
    );
    assert_eq!(hc.max_consecutive_failures, 5);
    assert_eq!(
        hc.delay_seconds, 15.0,
        "unset flags keep Marathon's defaults"
    );
    req.task.validate("task.").expect("valid");

    let cmd = task_launch::request(&launch(&[
        "--node",
        "n1",
        "--health-cmd",
        "true",
        "--",
        "x",
    ]))
    .expect("cmd");
    assert_eq!(cmd.task.health_checks[0].protocol, HealthProtocol::Command);
    // HTTP and TCP checks need a port to check.
    assert!(task_launch::request(&launch(&["--node", "n1", "--health-tcp", "--", "x"])).is_err());
    // One kind of check at a time, and tuning needs a check.
    assert!(
        parse(&[
            "tasks",
            "launch",
            "--node",
            "n",
            "--health-tcp",
            "--health-cmd",
            "true",
            "--",
            "x"
        ])
        .is_err()
    );
    assert!(
        parse(&[
            "tasks",
            "launch",
            "--node",
            "n",
            "--health-interval",
            "1",
            "--",
            "x"
        ])
        .is_err()
    );
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    for args in [
        &["--master", "http://m:1", "--json", "nodes"][..],
        &["nodes", "--master", "http://m:1", "--json"][..],
        &["tasks", "--master", "http://m:1", "kill", "t.1", "--json"][..],
    ] {
        let cli = parse(args).expect("parses");
        assert_eq!(cli.global.master, "http://m:1", "{args:?}");
        assert!(cli.global.json, "{args:?}");
    }
    // After `--`, words belong to the task's command.
    let args = launch(&["--node", "n1", "--", "echo", "--json"]);
    assert_eq!(args.command, ["echo", "--json"]);
}

#[test]
fn nouns_without_verbs_list() {
    match parse(&["nodes"]).expect("nodes").command {
        Command::Nodes(n) => assert!(n.command.is_none()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(&["node", "ls"]).expect("node ls").command,
        Command::Nodes(n) if matches!(n.command, Some(NodesCommand::List))
    ));
    match parse(&[
        "tasks", "--state", "Killed", "--node", "n2", "--label", "app=web",
    ])
    .expect("tasks")
    .command
    {
        Command::Tasks(t) => {
            assert!(t.command.is_none());
            assert_eq!(t.list.state, Some(TaskState::Killed));
            assert_eq!(t.list.node.as_deref(), Some("n2"));
            assert_eq!(t.list.label.as_deref(), Some("app=web"));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse(&["tasks", "--state", "sleepy"]).is_err());
    assert!(parse(&["tasks", "--label", "novalue"]).is_err());
}

#[test]
fn logs_and_kill_options() {
    match parse(&["tasks", "logs", "t.1", "-f", "--stderr", "--tail", "4096"])
        .expect("logs")
        .command
    {
        Command::Tasks(t) => match t.command {
            Some(TasksCommand::Logs(l)) => {
                assert!(l.follow && l.stderr);
                assert_eq!(l.tail, Some(4096));
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert!(parse(&["tasks", "kill", "t.1", "--wait", "--timeout", "5"]).is_ok());
    assert!(
        parse(&["tasks", "kill", "t.1", "--timeout", "5"]).is_err(),
        "--timeout needs --wait"
    );
}

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
