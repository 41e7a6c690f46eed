//! Which Unix user a task runs as.
//!
//! An agent running as root runs every task as an unprivileged *task user*
//! (`--task-user`, default `drover-task` where that user exists, else `nobody`, by
//! number where the host has no user database). A task
//! may name another user (`user` in its definition) only if the agent allows it
//! (`--allowed-task-users a,b`); uid 0 needs `--allow-root-tasks`, whatever the user's
//! name. An agent that is not root cannot switch users: its tasks run as its own user,
//! and asking it for any other user is an error at start (flags) or a failed task (a
//! task's `user`).
//!
//! The decisions ([`default_user_name`], [`TaskUsers::decide`], [`check_flags`]) are pure;
//! [`lookup`] reads the host's user database, and [`drop_privileges`] is what a
//! spawned task runs between fork and exec.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The task user an agent running as root uses when it exists and `--task-user` is unset.
pub const DEFAULT_TASK_USER: &str = "drover-task";

/// The fallback task user, present on every Linux host.
pub const FALLBACK_TASK_USER: &str = "nobody";

/// The flag that allows uid 0, named in refusals.
pub const ALLOW_ROOT_FLAG: &str = "--allow-root-tasks";

/// The flag listing the users tasks may name, named in refusals.
pub const ALLOWED_USERS_FLAG: &str = "--allowed-task-users";

/// A resolved Unix user: what a task runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUser {
    /// The user's name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its supplementary groups (from the group database, primary included).
    pub groups: Vec<u32>,
    /// Its home directory (from the user database; it may not exist, as `nobody`'s).
    pub home: PathBuf,
}

impl TaskUser {
    /// Whether this is the superuser.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Why the task-user flags are unusable; the agent refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskUserError {
    /// The configured task user does not exist on this host.
    #[error(
        "--task-user {0:?}: no such user on this host (create it, e.g. `useradd --system --no-create-home --shell /usr/sbin/nologin {0}`, or name another)"
    )]
    NoSuchUser(String),
    /// A non-root agent was asked to run tasks as someone else.
    #[error(
        "{flag} {user:?}: the agent runs as {agent:?} and is not root, so its tasks can only run as {agent:?} (run the agent as root to run them as other users)"
    )]
    CannotSwitch {
        /// The flag.
        flag: &'static str,
        /// The user asked for.
        user: String,
        /// The agent's own user.
        agent: String,
    },
    /// The task user is root without `--allow-root-tasks`.
    #[error("--task-user {0:?} has uid 0: running every task as root needs --allow-root-tasks")]
    RootNotAllowed(String),
    /// An empty name in a list.
    #[error("{0}: empty user name")]
    EmptyName(&'static str),
}

/// The users an agent runs tasks as: the default one and those tasks may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskUsers {
    /// Who tasks run as when they name no user.
    pub default: TaskUser,
    /// Other user names tasks may ask for (`--allowed-task-users`).
    pub allowed: BTreeSet<String>,
    /// Whether uid 0 may run (`--allow-root-tasks`).
    pub allow_root: bool,
    /// Whether the agent can switch users (it runs as root). When it cannot, tasks run as
    /// the agent itself and [`TaskUsers::default`] is the agent's own user.
    pub switching: bool,
}

/// The flags as given, before anything is looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskUserFlags {
    /// `--task-user`.
    pub task_user: Option<String>,
    /// `--allowed-task-users`.
    pub allowed: Vec<String>,
    /// `--allow-root-tasks`.
    pub allow_root: bool,
}

/// The task user's name when `--task-user` is unset: the agent's own user when it is not
/// root (it cannot be anyone else), else `drover-task` if the host has it, else `nobody`.
pub fn default_user_name(
    agent_is_root: bool,
    agent_user: &str,
    exists: impl Fn(&str) -> bool,
) -> String {
    if !agent_is_root {
        agent_user.to_string()
    } else if exists(DEFAULT_TASK_USER) {
        DEFAULT_TASK_USER.to_string()
    } else {
        FALLBACK_TASK_USER.to_string()
    }
}

/// Checks the flags against who the agent is and what the host has, and resolves the
/// task users. `agent` is the agent's own user; `lookup` resolves a name.
pub fn check_flags(
    flags: &TaskUserFlags,
    agent: &TaskUser,
    lookup: impl Fn(&str) -> Option<TaskUser>,
) -> Result<TaskUsers, TaskUserError> {
    let switching = agent.is_root();
    let mut allowed = BTreeSet::new();
    for name in &flags.allowed {
        let name = name.trim();
        if name.is_empty() {
            return Err(TaskUserError::EmptyName(ALLOWED_USERS_FLAG));
        }
        if !switching && name != agent.name {
            return Err(TaskUserError::CannotSwitch {
                flag: ALLOWED_USERS_FLAG,
                user: name.to_string(),
                agent: agent.name.clone(),
            });
        }
        allowed.insert(name.to_string());
    }
    let name = match flags.task_user.as_deref().map(str::trim) {
        Some("") => return Err(TaskUserError::EmptyName("--task-user")),
        Some(n) => n.to_string(),
        None => default_user_name(switching, &agent.name, |n| lookup(n).is_some()),
    };
    if !switching {
        if name != agent.name {
            return Err(TaskUserError::CannotSwitch {
                flag: "--task-user",
                user: name,
                agent: agent.name.clone(),
            });
        }
        return Ok(TaskUsers {
            default: agent.clone(),
            allowed,
            allow_root: flags.allow_root,
            switching,
        });
    }
    let default = match lookup(&name) {
        Some(u) => u,
        // A host with no user database at all (a bare chroot, a scratch image) still
        // gets an unprivileged default: the kernel's overflow uid, which `nobody` is.
        None if flags.task_user.is_none() => nobody(),
        None => return Err(TaskUserError::NoSuchUser(name)),
    };
    if default.is_root() && !flags.allow_root {
        return Err(TaskUserError::RootNotAllowed(name));
    }
    Ok(TaskUsers {
        default,
        allowed,
        allow_root: flags.allow_root,
        switching,
    })
}

impl TaskUsers {
    /// Tasks run as the agent itself, which can switch to no one (what tests and tools
    /// embedding the runner get; the agent proper always goes through [`check_flags`]).
    pub fn as_agent(agent: TaskUser) -> TaskUsers {
        TaskUsers {
            default: agent,
            allowed: BTreeSet::new(),
            allow_root: false,
            switching: false,
        }
    }

    /// Who a task that asks for `requested` runs as, or why it cannot run (the task
    /// fails with that message, naming the flag that would allow it).
    pub fn decide(
        &self,
        requested: Option<&str>,
        lookup: impl Fn(&str) -> Option<TaskUser>,
    ) -> Result<TaskUser, String> {
        let Some(name) = requested.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(self.default.clone());
        };
        if name == self.default.name {
            return Ok(self.default.clone());
        }
        if !self.switching {
            return Err(format!(
                "cannot run as user {name:?}: the agent runs as {:?} and is not root, so its tasks run as {:?}",
                self.default.name, self.default.name
            ));
        }
        // root is allowed by its own flag; anyone else must be listed.
        if name != "root" && !self.allowed.contains(name) {
            return Err(format!(
                "cannot run as user {name:?}: this agent runs tasks as {:?} and allows no other user unless started with {ALLOWED_USERS_FLAG} {name}",
                self.default.name
            ));
        }
        let user = lookup(name)
            .ok_or_else(|| format!("cannot run as user {name:?}: no such user on this host"))?;
        if user.is_root() && !self.allow_root {
            return Err(format!(
                "cannot run as user {name:?}: it is root (uid 0), which this agent runs only when started with {ALLOW_ROOT_FLAG}"
            ));
        }
        Ok(user)
    }
}

/// `nobody` by number (65534, the kernel's overflow uid and gid), for hosts whose user
/// database lacks it.
pub fn nobody() -> TaskUser {
    TaskUser {
        name: FALLBACK_TASK_USER.to_string(),
        uid: 65534,
        gid: 65534,
        groups: vec![65534],
        home: PathBuf::from("/nonexistent"),
    }
}

/// Whether `user` may pass through (search) a directory with `mode`, `owner` and `group`.
pub fn can_traverse(user: &TaskUser, mode: u32, owner: u32, group: u32) -> bool {
    if user.is_root() {
        return true;
    }
    if owner == user.uid {
        mode & 0o100 != 0
    } else if group == user.gid || user.groups.contains(&group) {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// The first directory on the way to `dir` (itself included) that `user` cannot pass
/// through, if any. Tasks still start there (the agent enters the sandbox for them),
/// but cannot reach it by its path (`$MESOS_SANDBOX`).
pub fn blocked_on_the_way(user: &TaskUser, dir: &std::path::Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    dir.ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find_map(|d| {
            let m = std::fs::metadata(d).ok()?;
            (!can_traverse(user, m.mode(), m.uid(), m.gid())).then(|| d.to_path_buf())
        })
}

/// Looks a user up in the host's user and group databases.
pub fn lookup(name: &str) -> Option<TaskUser> {
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    Some(from_nix(user))
}

/// The user the agent itself runs as (its effective uid). A uid with no name (a
/// container's bare uid) is named by its number.
pub fn current() -> TaskUser {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid).ok().flatten() {
        Some(u) => from_nix(u),
        None => TaskUser {
            name: uid.to_string(),
            uid: uid.as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: Vec::new(),
            home: std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default(),
        },
    }
}

fn from_nix(u: nix::unistd::User) -> TaskUser {
    let groups = std::ffi::CString::new(u.name.as_bytes())
        .ok()
        .and_then(|c| nix::unistd::getgrouplist(&c, u.gid).ok())
        .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| vec![u.gid.as_raw()]);
    TaskUser {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups,
        home: u.dir,
    }
}

/// The identity a spawned process takes on: groups, gid, then uid (the order in which
/// the right to change each is still held).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// The supplementary groups.
    pub groups: Vec<u32>,
}

/// Makes `cmd` switch to `who` between fork and exec: supplementary groups, gid, uid.
///
/// std's own `Command::uid` clears the supplementary groups instead of setting them
/// (setting them is unstable), hence the hook. It runs after std's chdir, so the working
/// directory is entered with the agent's rights; a sandbox under a directory the task
/// user cannot traverse still works as the task's working directory.
pub fn drop_privileges(cmd: &mut std::process::Command, who: &Identity) {
    use std::os::unix::process::CommandExt;
    let hook = switch_hook(who);
    // SAFETY: the hook only makes the setgroups/setgid/setuid system calls, which are
    // async-signal-safe, on values prepared before the fork; it allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// [`drop_privileges`] for tokio's `Command` (health-check commands).
pub fn drop_privileges_tokio(cmd: &mut tokio::process::Command, who: &Identity) {
    let hook = switch_hook(who);
    // SAFETY: as in `drop_privileges`: system calls only, nothing allocated after fork.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(hook);
    }
}

fn switch_hook(who: &Identity) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    let groups: Vec<Gid> = who.groups.iter().copied().map(Gid::from_raw).collect();
    let (uid, gid) = (Uid::from_raw(who.uid), Gid::from_raw(who.gid));
    move || {
        setgroups(&groups)?;
        setgid(gid)?;
        setuid(uid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, uid: u32) -> TaskUser {
        TaskUser {
            name: name.into(),
            uid,
            gid: uid,
            groups: vec![uid],
            home: PathBuf::from(format!("/home/{name}")),
        }
    }

    fn host(name: &str) -> Option<TaskUser> {
        match name {
            "root" => Some(user("root", 0)),
            "toor" => Some(user("toor", 0)),
            "nobody" => Some(user("nobody", 65534)),
            "drover-task" => Some(user("drover-task", 990)),
            "app" => Some(user("app", 1001)),
            "me" => Some(user("me", 1000)),
            _ => None,
        }
    }

    fn flags(task_user: Option<&str>, allowed: &[&str], allow_root: bool) -> TaskUserFlags {
        TaskUserFlags {
            task_user: task_user.map(str::to_string),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            allow_root,
        }
    }

    #[test]
    fn traversal_follows_the_mode_bits_of_owner_group_and_others() {
        let u = TaskUser {
            groups: vec![990, 44],
            ..user("drover-task", 990)
        };
        assert!(can_traverse(&u, 0o711, 0, 0));
        assert!(!can_traverse(&u, 0o700, 0, 0));
        assert!(
            can_traverse(&u, 0o710, 0, 44),
            "a supplementary group counts"
        );
        assert!(
            !can_traverse(&u, 0o701, 0, 44),
            "the group bits decide for a member"
        );
        assert!(can_traverse(&u, 0o100, 990, 0));
        assert!(can_traverse(&user("root", 0), 0o000, 1, 1));
    }

    #[test]
    fn default_user_is_drover_task_then_nobody_and_the_agent_itself_when_not_root() {
        assert_eq!(default_user_name(true, "root", |_| true), "drover-task");
        assert_eq!(default_user_name(true, "root", |_| false), "nobody");
        assert_eq!(default_user_name(false, "me", |_| true), "me");
    }

    #[test]
    fn a_root_agent_resolves_its_task_user_and_refuses_bad_ones() {
        let root = user("root", 0);
        let u = check_flags(&flags(None, &[], false), &root, host).unwrap();
        assert_eq!(u.default.name, "drover-task");
        assert!(u.switching);
        let no_drover_task = |n: &str| host(n).filter(|u| u.name != "drover-task");
        let u = check_flags(&flags(None, &[], false), &root, no_drover_task).unwrap();
        assert_eq!(u.default.name, "nobody");
        // No user database at all: nobody by number, never root.
        let u = check_flags(&flags(None, &[], false), &root, |_| None).unwrap();
        assert_eq!(u.default, nobody());
        // But a user named on purpose must exist.
        assert_eq!(
            check_flags(&flags(Some("nobody"), &[], false), &root, |_| None),
            Err(TaskUserError::NoSuchUser("nobody".into()))
        );
        assert_eq!(
            check_flags(&flags(Some("ghost"), &[], false), &root, host),
            Err(TaskUserError::NoSuchUser("ghost".into()))
        );
        assert_eq!(
            check_flags(&flags(Some("root"), &[], false), &root, host),
            Err(TaskUserError::RootNotAllowed("root".into()))
        );
        assert!(check_flags(&flags(Some("root"), &[], true), &root, host).is_ok());
        assert_eq!(
            check_flags(&flags(None, &["app", " "], false), &root, host),
            Err(TaskUserError::EmptyName(ALLOWED_USERS_FLAG))
        );
    }

    #[test]
    fn a_non_root_agent_runs_tasks_as_itself_and_refuses_other_users_at_start() {
        let me = user("me", 1000);
        let u = check_flags(&flags(None, &[], false), &me, host).unwrap();
        assert_eq!(u.default, me);
        assert!(!u.switching);
        assert!(check_flags(&flags(Some("me"), &["me"], false), &me, host).is_ok());
        let err = check_flags(&flags(Some("nobody"), &[], false), &me, host).unwrap_err();
        assert!(err.to_string().contains("not root"), "{err}");
        let err = check_flags(&flags(None, &["app"], false), &me, host).unwrap_err();
        assert!(err.to_string().contains(ALLOWED_USERS_FLAG), "{err}");
    }

    #[test]
    fn tasks_get_the_default_user_or_an_allowed_one() {
        let u = check_flags(
            &flags(None, &["app", "toor"], false),
            &user("root", 0),
            host,
        )
        .unwrap();
        assert_eq!(u.decide(None, host).unwrap().name, "drover-task");
        assert_eq!(u.decide(Some(""), host).unwrap().name, "drover-task");
        assert_eq!(u.decide(Some("drover-task"), host).unwrap().uid, 990);
        assert_eq!(u.decide(Some("app"), host).unwrap().uid, 1001);
        let err = u.decide(Some("nobody"), host).unwrap_err();
        assert!(err.contains("--allowed-task-users nobody"), "{err}");
        let err = u.decide(Some("root"), host).unwrap_err();
        assert!(err.contains(ALLOW_ROOT_FLAG), "{err}");
        // A listed user with uid 0 is still root.
        let err = u.decide(Some("toor"), host).unwrap_err();
        assert!(err.contains(ALLOW_ROOT_FLAG), "{err}");
    }

    #[test]
    fn root_runs_only_with_its_flag() {
        let u = check_flags(&flags(None, &[], true), &user("root", 0), host).unwrap();
        assert_eq!(u.decide(Some("root"), host).unwrap().uid, 0);
        // The flag allows uid 0, not every user.
        assert!(u.decide(Some("app"), host).is_err());
        let u = check_flags(&flags(None, &["ghost"], true), &user("root", 0), host).unwrap();
        assert!(
            u.decide(Some("ghost"), host)
                .unwrap_err()
                .contains("no such user")
        );
    }

    #[test]
    fn a_non_root_agent_refuses_other_users_per_task() {
        let u = TaskUsers::as_agent(user("me", 1000));
        assert_eq!(u.decide(Some("me"), host).unwrap().name, "me");
        let err = u.decide(Some("root"), host).unwrap_err();
        assert!(err.contains("not root"), "{err}");
    }
}
