//! The cluster this agent belongs to: remembered in `<work dir>/cluster-id` from its
//! first registration on, and checked in every answer of the master before the agent
//! acts on it.
//!
//! Why: the agent does what the master's assignments say, including kills. A master of
//! another cluster, or one started on an empty store (it has a new id, or none), would
//! otherwise make the agent kill every task it runs. Refusing such a master keeps the
//! tasks running; the agent keeps retrying and logs the two ids at ERROR, so fixing the
//! master (its store, its `--data-dir`, the URL) heals the node by itself.
//! `--join-new-cluster` tells the agent, once, to accept the cluster of the master it
//! next registers with.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use drover_api::agent::ClusterId;

/// The file under the work dir that holds the cluster id.
pub const CLUSTER_ID_FILE: &str = "cluster-id";

/// What to do with a master's answer, given the cluster the agent remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The master serves the agent's cluster: act on its answer.
    Accept,
    /// The agent joins this cluster (its first registration, or `--join-new-cluster`):
    /// remember it, then act on the answer.
    Join(ClusterId),
    /// Not the agent's cluster: act on nothing, keep the tasks, say why and retry.
    Refuse(String),
}

/// The pure decision. `remembered`: the cluster the agent joined before; `offered`: the
/// master's (`None` from a master without cluster ids); `join_new`: the operator's
/// `--join-new-cluster`, not yet used.
pub fn check(
    remembered: Option<&ClusterId>,
    offered: Option<&ClusterId>,
    join_new: bool,
) -> Verdict {
    match (remembered, offered) {
        (_, None) => Verdict::Refuse(match remembered {
            Some(mine) => format!(
                "the master has no cluster id (a version from before cluster ids?), and this agent belongs to cluster {mine}: upgrade the master, or point the agent at its cluster's master"
            ),
            None => "the master has no cluster id (a version from before cluster ids?): upgrade the master first".to_string(),
        }),
        (None, Some(theirs)) => Verdict::Join(theirs.clone()),
        (Some(mine), Some(theirs)) if mine == theirs => Verdict::Accept,
        (Some(_), Some(theirs)) if join_new => Verdict::Join(theirs.clone()),
        (Some(mine), Some(theirs)) => Verdict::Refuse(format!(
            "the master serves cluster {theirs}, but this agent belongs to cluster {mine}: its tasks keep running and none of that master's assignments are applied. If the master started on an empty, new or damaged store, restore its store (or fix its --data-dir) and it heals by itself; if this node should move to the new cluster (and give its tasks to it), restart the agent once with --join-new-cluster"
        )),
    }
}

/// Why the remembered cluster id cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The file exists but cannot be read, or does not hold a cluster id.
    #[error(
        "cannot read the cluster id in {path}: {message}; if the file is damaged, write the cluster's id into it (GET /v1/cluster on its master), or remove it to join the next master's cluster"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Writing the file failed.
    #[error("cannot write the cluster id to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The agent's membership: the remembered id and the file that keeps it.
#[derive(Debug)]
pub struct Membership {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    joined: Option<ClusterId>,
    join_new: bool,
}

impl Membership {
    /// Reads `<work_dir>/cluster-id` (absent: no cluster joined yet).
    pub fn load(work_dir: &Path, join_new: bool) -> Result<Membership, MembershipError> {
        let path = work_dir.join(CLUSTER_ID_FILE);
        let joined = match std::fs::read_to_string(&path) {
            Ok(text) => Some(
                ClusterId::parse(&text).map_err(|message| MembershipError::Read {
                    path: path.clone(),
                    message,
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(MembershipError::Read {
                    path,
                    message: e.to_string(),
                });
            }
        };
        Ok(Membership {
            path,
            state: Mutex::new(State { joined, join_new }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cluster joined, if any.
    pub fn joined(&self) -> Option<ClusterId> {
        self.lock().joined.clone()
    }

    /// The id to send with a registration: none while `--join-new-cluster` is pending
    /// (so the master does not refuse the move).
    pub fn claim(&self) -> Option<ClusterId> {
        let st = self.lock();
        if st.join_new { None } else { st.joined.clone() }
    }

    /// Decides on a master's id and, for a join, remembers it (written to a temporary
    /// file, synced, then renamed over the old one, so the file never holds half an id).
    /// Registering with any master of an id uses up `--join-new-cluster`: a later change
    /// of cluster in this run is refused again.
    pub fn admit(&self, offered: Option<&ClusterId>) -> Result<Verdict, MembershipError> {
        let mut st = self.lock();
        let verdict = check(st.joined.as_ref(), offered, st.join_new);
        match &verdict {
            Verdict::Join(id) => {
                write_atomically(&self.path, id)?;
                st.joined = Some(id.clone());
                st.join_new = false;
            }
            Verdict::Accept => st.join_new = false,
            Verdict::Refuse(_) => {}
        }
        Ok(verdict)
    }

    /// Whether an answer from a master of `offered` may be acted on (no joining here:
    /// only a registration joins).
    pub fn is_mine(&self, offered: Option<&ClusterId>) -> Result<(), String> {
        let st = self.lock();
        match (st.joined.as_ref(), offered) {
            (Some(mine), Some(theirs)) if mine == theirs => Ok(()),
            (mine, theirs) => match check(mine, theirs, false) {
                Verdict::Refuse(why) => Err(why),
                _ => Err(format!(
                    "the answer is from cluster {}, which this agent has not joined",
                    theirs.map_or("(none)".to_string(), |t| t.to_string())
                )),
            },
        }
    }
}

fn write_atomically(path: &Path, id: &ClusterId) -> Result<(), MembershipError> {
    let err = |source| MembershipError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(format!("{id}\n").as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(n: u8) -> ClusterId {
        ClusterId(format!("00000000-0000-4000-8000-0000000000{n:02}"))
    }

    #[test]
    fn the_decision_table() {
        let (a, b) = (id(1), id(2));
        // First registration: join whatever the master serves.
        assert_eq!(check(None, Some(&a), false), Verdict::Join(a.clone()));
        // Same cluster: act.
        assert_eq!(check(Some(&a), Some(&a), false), Verdict::Accept);
        assert_eq!(check(Some(&a), Some(&a), true), Verdict::Accept);
        // Another cluster: refuse, naming both, unless told to join it.
        let Verdict::Refuse(why) = check(Some(&a), Some(&b), false) else {
            panic!("a foreign master is refused");
        };
        assert!(
            why.contains(a.as_str()) && why.contains(b.as_str()),
            "{why}"
        );
        assert!(why.contains("--join-new-cluster"), "{why}");
        assert_eq!(check(Some(&a), Some(&b), true), Verdict::Join(b.clone()));
        // A master without an id is never followed.
        assert!(matches!(check(Some(&a), None, false), Verdict::Refuse(_)));
        assert!(matches!(check(Some(&a), None, true), Verdict::Refuse(_)));
        assert!(matches!(check(None, None, false), Verdict::Refuse(_)));
    }

    #[test]
    fn membership_is_remembered_and_a_join_is_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (id(1), id(2), id(3));
        let m = Membership::load(dir.path(), false).unwrap();
        assert_eq!(m.claim(), None);
        assert_eq!(m.admit(Some(&a)).unwrap(), Verdict::Join(a.clone()));
        assert!(m.is_mine(Some(&a)).is_ok());
        assert!(m.is_mine(Some(&b)).is_err());
        assert!(m.is_mine(None).is_err());

        // A restart reads it back and refuses another cluster.
        let m = Membership::load(dir.path(), false).unwrap();
        assert_eq!(m.joined(), Some(a.clone()));
        assert_eq!(m.claim(), Some(a.clone()));
        assert!(matches!(m.admit(Some(&b)).unwrap(), Verdict::Refuse(_)));
        assert_eq!(m.joined(), Some(a.clone()), "a refusal changes nothing");

        // --join-new-cluster: claims nothing, joins the next cluster, then is used up.
        let m = Membership::load(dir.path(), true).unwrap();
        assert_eq!(m.claim(), None);
        assert_eq!(m.admit(Some(&b)).unwrap(), Verdict::Join(b.clone()));
        assert_eq!(m.claim(), Some(b.clone()));
        assert!(matches!(m.admit(Some(&c)).unwrap(), Verdict::Refuse(_)));
        let again = Membership::load(dir.path(), false).unwrap();
        assert_eq!(again.joined(), Some(b));
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CLUSTER_ID_FILE), "not an id").unwrap();
        let err = Membership::load(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains(CLUSTER_ID_FILE), "{err}");
    }
}
