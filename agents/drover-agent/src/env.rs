//! What a task is started with: its argv and its environment (who it runs as is
//! [`crate::task_user`]'s decision). Pure functions over the spec; the runner supplies
//! the host facts.

use std::collections::BTreeMap;
use std::path::Path;

use drover_api::task::{TaskDefinition, TaskSpec, labels};

/// The PATH a task gets when the agent itself has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why [`argv`] refuses a container task (the runner sends those to the Docker executor).
pub const NO_DOCKER: &str = "a container task does not run as a process";

/// The minimal environment every task starts from: `PATH` and `LANG` (when the agent has
/// it). Nothing else of the agent's leaks, least of all its own `DROVER_AGENT_*` settings.
pub fn base_env(path: Option<String>, lang: Option<String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        path.filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.to_string()),
    );
    if let Some(lang) = lang.filter(|l| !l.is_empty()) {
        env.insert("LANG".to_string(), lang);
    }
    env
}

/// [`base_env`] from the agent's own environment.
pub fn base_env_from_process() -> BTreeMap<String, String> {
    base_env(std::env::var("PATH").ok(), std::env::var("LANG").ok())
}

/// The task's full environment: `base`, then the task's own `env`, then Drover's
/// variables (which win, so a task cannot spoof its id or ports).
pub fn task_env(
    spec: &TaskSpec,
    base: &BTreeMap<String, String>,
    host: &str,
    sandbox: &Path,
) -> BTreeMap<String, String> {
    let mut env = base.clone();
    env.extend(
        spec.definition
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let ports: Vec<String> = spec.host_ports.iter().map(u16::to_string).collect();
    for (i, p) in ports.iter().enumerate() {
        env.insert(format!("PORT{i}"), p.clone());
    }
    if let Some(p0) = ports.first() {
        env.insert("PORT".to_string(), p0.clone());
    }
    env.insert("PORTS".to_string(), ports.join(","));
    for (req, port) in spec.definition.ports.iter().zip(&spec.host_ports) {
        if let Some(name) = &req.name {
            env.insert(format!("PORT_{}", port_var_name(name)), port.to_string());
        }
    }
    env.insert("HOST".to_string(), host.to_string());
    env.insert("DROVER_TASK_ID".to_string(), spec.id.to_string());
    env.insert("MESOS_TASK_ID".to_string(), spec.id.to_string());
    let label = |k: &str| spec.definition.labels.get(k).cloned();
    if let Some(app) = label(labels::APP_ID) {
        env.insert("DROVER_APP_ID".to_string(), app.clone());
        env.insert("MARATHON_APP_ID".to_string(), app);
    }
    if let Some(job) = label(labels::JOB_NAME) {
        env.insert("DROVER_JOB_NAME".to_string(), job);
    }
    if let Some(version) = label(labels::VERSION) {
        env.insert("DROVER_VERSION".to_string(), version.clone());
        env.insert("MARATHON_APP_VERSION".to_string(), version);
    }
    let sandbox = sandbox.to_string_lossy().into_owned();
    env.insert("MESOS_SANDBOX".to_string(), sandbox.clone());
    env.insert("DROVER_SANDBOX".to_string(), sandbox);
    env
}

/// `PORT_<NAME>`: upper-cased, with `-` made `_` so shells can expand it.
pub fn port_var_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// The argv to execute: `cmd` through `/bin/sh -c`, or `args` as given.
pub fn argv(def: &TaskDefinition) -> Result<Vec<String>, String> {
    if def.container.is_some() {
        return Err(NO_DOCKER.to_string());
    }
    if let Some(cmd) = def.cmd.as_deref().filter(|c| !c.trim().is_empty()) {
        return Ok(vec!["/bin/sh".into(), "-c".into(), cmd.to_string()]);
    }
    match &def.args {
        Some(args) if args.first().is_some_and(|a| !a.is_empty()) => Ok(args.clone()),
        _ => Err("the task has neither cmd nor args".to_string()),
    }
}

/// The host part of an advertise URL (`http://10.0.0.5:5051` -> `10.0.0.5`).
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    authority.split(':').next().unwrap_or(authority).to_string()
}

/// `base` plus the variables naming the user a task runs as: `USER`, `LOGNAME` and
/// `HOME` (the user's home when it exists, else the sandbox: `nobody`'s is
/// `/nonexistent`). The task's own `env` may still override them.
pub fn with_user(
    base: &BTreeMap<String, String>,
    user: &str,
    home: Option<&Path>,
    sandbox: &Path,
) -> BTreeMap<String, String> {
    let mut env = base.clone();
    env.insert("USER".to_string(), user.to_string());
    env.insert("LOGNAME".to_string(), user.to_string());
    let home = home.unwrap_or(sandbox).to_string_lossy().into_owned();
    env.insert("HOME".to_string(), home);
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_api::task::PortRequest;

    fn spec() -> TaskSpec {
        let mut def = TaskDefinition {
            name: "web".into(),
            cmd: Some("run".into()),
            ..Default::default()
        };
        def.ports = vec![
            PortRequest {
                name: Some("http".into()),
                port: 0,
            },
            PortRequest {
                name: Some("admin-ui".into()),
                port: 0,
            },
        ];
        def.env.insert("FOO".into(), "bar".into());
        def.env.insert("PORT0".into(), "spoofed".into());
        def.labels.insert(labels::APP_ID.into(), "/web".into());
        def.labels.insert(labels::VERSION.into(), "v7".into());
        TaskSpec {
            id: "web.1".into(),
            node: "n1".into(),
            definition: def,
            host_ports: vec![31001, 31002],
        }
    }

    #[test]
    fn environment_has_drovers_variables_and_they_win() {
        let base = base_env(None, Some("C.UTF-8".into()));
        let env = task_env(&spec(), &base, "10.0.0.5", Path::new("/w/tasks/web.1"));
        assert_eq!(env["PATH"], DEFAULT_PATH);
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["FOO"], "bar");
        assert_eq!(env["PORT0"], "31001");
        assert_eq!(env["PORT1"], "31002");
        assert_eq!(env["PORT"], "31001");
        assert_eq!(env["PORTS"], "31001,31002");
        assert_eq!(env["PORT_HTTP"], "31001");
        assert_eq!(env["PORT_ADMIN_UI"], "31002");
        assert_eq!(env["HOST"], "10.0.0.5");
        assert_eq!(env["DROVER_TASK_ID"], "web.1");
        assert_eq!(env["MESOS_TASK_ID"], "web.1");
        assert_eq!(env["DROVER_APP_ID"], "/web");
        assert_eq!(env["MARATHON_APP_ID"], "/web");
        assert_eq!(env["DROVER_VERSION"], "v7");
        assert_eq!(env["MARATHON_APP_VERSION"], "v7");
        assert_eq!(env["MESOS_SANDBOX"], "/w/tasks/web.1");
        assert!(!env.contains_key("DROVER_JOB_NAME"));
        assert!(env.keys().all(|k| !k.starts_with("DROVER_AGENT_")));
    }

    #[test]
    fn argv_forms() {
        let mut d = TaskDefinition {
            name: "t".into(),
            cmd: Some("echo hi".into()),
            ..Default::default()
        };
        assert_eq!(argv(&d).unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        d.cmd = None;
        d.args = Some(vec!["/bin/echo".into(), "a b".into()]);
        assert_eq!(argv(&d).unwrap(), vec!["/bin/echo", "a b"]);
        d.container = Some(serde_json::json!({"type": "DOCKER"}));
        assert_eq!(argv(&d).unwrap_err(), NO_DOCKER);
    }

    #[test]
    fn host_part_of_urls() {
        assert_eq!(host_of("http://10.0.0.5:5051"), "10.0.0.5");
        assert_eq!(host_of("http://node-1.example:5051/x"), "node-1.example");
        assert_eq!(host_of("http://[::1]:5051"), "::1");
        assert_eq!(host_of("node"), "node");
    }

    #[test]
    fn user_variables_come_first_and_the_task_may_override_them() {
        let base = base_env(None, None);
        let sb = Path::new("/w/tasks/web.1");
        let env = with_user(&base, "drover-task", None, sb);
        assert_eq!(env["USER"], "drover-task");
        assert_eq!(env["LOGNAME"], "drover-task");
        assert_eq!(env["HOME"], "/w/tasks/web.1");
        let env = with_user(&base, "app", Some(Path::new("/home/app")), sb);
        assert_eq!(env["HOME"], "/home/app");
        let mut s = spec();
        s.definition.env.insert("HOME".into(), "/data".into());
        assert_eq!(task_env(&s, &env, "h", sb)["HOME"], "/data");
    }

    #[test]
    fn nothing_of_the_agents_environment_but_path_and_lang_reaches_tasks() {
        // What the agent's own environment may hold (its token above all) is not read.
        let env = base_env(Some("/bin".into()), Some("C".into()));
        assert_eq!(env.keys().collect::<Vec<_>>(), ["LANG", "PATH"]);
    }
}
