//! Tasks run unprivileged: with the agent running as root, a task runs as the agent's
//! task user (not root), cannot read the cluster token or the agent's files, can write
//! its own sandbox, and a task asking for `root` is refused unless the agent was started
//! with `--allow-root-tasks`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_api::Resources;
use drover_api::TaskId;
use drover_api::client::MasterClient;
use drover_api::task::{LaunchRequest, Task, TaskDefinition, TaskState};
use drover_cluster_tests::{Server, bin_path, not_root, skipped, wait_for};

const LONG: Duration = Duration::from_secs(60);
const TOKEN: &str = "s3cret-task-user-token";

/// A master and two agents sharing a token file (mode 0600, as the playbooks write it):
/// `plain` with the defaults, `rooty` with `--allow-root-tasks`.
struct Setup {
    dir: tempfile::TempDir,
    token_file: PathBuf,
    client: MasterClient,
    _master: Server,
    _agents: Vec<Server>,
}

impl Setup {
    async fn start() -> Setup {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("drover-task-user-")
            .tempdir()
            .unwrap();
        // Traversable, so that the task user reaches its sandbox by its absolute path.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let d = |p: &str| dir.path().join(p).display().to_string();
        let master = Server::start(
            &bin_path("drover-master"),
            &[
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--data-dir".into(),
                d("master"),
                "--token-file".into(),
                token_file.display().to_string(),
            ],
            &[("DROVER_MASTER_INIT".into(), "true".into())],
            &dir.path().join("master.log"),
        );
        let client = MasterClient::new(&master.url, Some(TOKEN.into())).unwrap();
        let mut agents = Vec::new();
        for (name, extra) in [("plain", None), ("rooty", Some("--allow-root-tasks"))] {
            let mut args = vec![
                "--master".to_string(),
                master.url.clone(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--name".into(),
                name.into(),
                "--work-dir".into(),
                d(name),
                "--token-file".into(),
                token_file.display().to_string(),
                "--docker-socket".into(),
                String::new(),
            ];
            args.extend(extra.map(str::to_string));
            agents.push(Server::start(
                &bin_path("drover-agent"),
                &args,
                // The token in the agent's environment too: it must not reach tasks.
                &[("DROVER_TOKEN".into(), TOKEN.into())],
                &dir.path().join(format!("{name}.log")),
            ));
        }
        let setup = Setup {
            dir,
            token_file,
            client,
            _master: master,
            _agents: agents,
        };
        let client = setup.client.clone();
        wait_for("both agents registered", LONG, || {
            let client = client.clone();
            async move { (client.nodes().await.ok()?.len() == 2).then_some(()) }
        })
        .await;
        setup
    }

    async fn run(&self, node: &str, name: &str, cmd: &str, user: Option<&str>) -> Task {
        let task = self
            .client
            .launch(&LaunchRequest {
                node: node.into(),
                id: None,
                task: TaskDefinition {
                    name: name.into(),
                    cmd: Some(cmd.into()),
                    user: user.map(str::to_string),
                    resources: Resources::new(0.1, 16.0, 0.0),
                    ..Default::default()
                },
            })
            .await
            .unwrap_or_else(|e| panic!("launch refused: {e}"));
        let id = task.id().clone();
        let client = self.client.clone();
        wait_for(&format!("{name} ended"), LONG, || {
            let client = client.clone();
            let id = id.clone();
            async move {
                client
                    .task(&id)
                    .await
                    .ok()
                    .filter(|t| t.state.is_terminal())
            }
        })
        .await
    }

    fn sandbox(&self, node: &str, id: &TaskId) -> PathBuf {
        self.dir.path().join(node).join("tasks").join(id.as_str())
    }

    fn stdout(&self, node: &str, id: &TaskId) -> String {
        std::fs::read_to_string(self.sandbox(node, id).join("stdout")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        ["master.log", "plain.log", "rooty.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
                format!("--- {f} ---\n{text}")
            })
            .collect()
    }
}

/// What the default task reports about itself, one `key=value` a line. It also leaves
/// links to `precious` where the agent (root) writes its records, which the agent must
/// not write through.
fn probe_cmd(token_file: &Path, work_dir: &Path, precious: &Path) -> String {
    format!(
        "ln -s {precious} .exit.json.tmp; ln -s {precious} exit.json; \
         echo uid=$(id -u); \
         rm -f task.json 2>/dev/null; if [ -e task.json ]; then echo records=kept; else echo records=removed; fi; \
         if cat {token} >/dev/null 2>&1; then echo token=readable; else echo token=refused; fi; \
         if env | grep -q {TOKEN}; then echo env=has-token; else echo env=clean; fi; \
         if ls {work} >/dev/null 2>&1; then echo workdir=listable; else echo workdir=closed; fi; \
         if echo x >> task.json 2>/dev/null; then echo checkpoint=writable; else echo checkpoint=protected; fi; \
         if echo hi > own-file && echo hi > \"$MESOS_SANDBOX/own-too\"; then echo sandbox=writable; else echo sandbox=read-only; fi",
        token = token_file.display(),
        work = work_dir.display(),
        precious = precious.display(),
    )
}

fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_run_unprivileged_and_root_only_where_allowed() {
    if let Some(why) = not_root() {
        skipped("task users", why);
        return;
    }
    let s = Setup::start().await;

    // A default task: not root, no token, its sandbox writable, the agent's files not.
    let work = s.dir.path().join("plain");
    let precious = s.dir.path().join("precious");
    std::fs::write(&precious, "keep me").unwrap();
    let t = s
        .run(
            "plain",
            "probe",
            &probe_cmd(&s.token_file, &work, &precious),
            None,
        )
        .await;
    let out = s.stdout("plain", t.id());
    eprintln!("default task reported:\n{out}");
    assert_eq!(t.state, TaskState::Finished, "{t:#?}\n{out}\n{}", s.logs());
    let uid: u32 = field(&out, "uid")
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no uid in {out:?}"));
    assert_ne!(uid, 0, "a default task must not run as root");
    assert_eq!(field(&out, "token"), Some("refused"), "{out}");
    assert_eq!(field(&out, "env"), Some("clean"), "{out}");
    assert_eq!(field(&out, "workdir"), Some("closed"), "{out}");
    assert_eq!(field(&out, "checkpoint"), Some("protected"), "{out}");
    assert_eq!(field(&out, "records"), Some("kept"), "{out}");
    assert_eq!(t.exit.and_then(|e| e.code), Some(0), "{t:#?}");
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "keep me",
        "the agent wrote through a link the task left"
    );
    assert_eq!(field(&out, "sandbox"), Some("writable"), "{out}");

    // root is refused by a default agent, and the failure names the flag that allows it.
    let t = s.run("plain", "as-root", "id -u", Some("root")).await;
    assert_eq!(t.state, TaskState::Failed, "{t:#?}");
    let msg = t.message.clone().unwrap_or_default();
    assert!(msg.contains("--allow-root-tasks"), "{msg}");
    assert_eq!(s.stdout("plain", t.id()), "", "it never ran");

    // Another user that is not in the allow-list is refused too, naming that flag.
    let t = s.run("plain", "as-daemon", "id -u", Some("daemon")).await;
    assert_eq!(t.state, TaskState::Failed, "{t:#?}");
    let msg = t.message.clone().unwrap_or_default();
    assert!(msg.contains("--allowed-task-users"), "{msg}");

    // With --allow-root-tasks, root is what the task asked for and gets.
    let t = s.run("rooty", "as-root", "id -u", Some("root")).await;
    assert_eq!(t.state, TaskState::Finished, "{t:#?}\n{}", s.logs());
    assert_eq!(s.stdout("rooty", t.id()).trim(), "0");
    // ...while its default tasks still run unprivileged.
    let t = s.run("rooty", "default", "id -u", None).await;
    assert_eq!(t.state, TaskState::Finished, "{t:#?}");
    assert_ne!(s.stdout("rooty", t.id()).trim(), "0");
}
