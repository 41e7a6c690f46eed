//! Tasks the master accepted that its last read may not show yet. A read of the master
//! sent before a launch was answered cannot show the launch's task; deciding on that
//! read alone would take the task for missing (and launch it again, or close a run
//! that was killed as "never started" while its task runs on). Each runtime adds these
//! tasks to what the read shows, until a read sent after the acceptance shows them (or,
//! not showing them, says the master no longer has them).

use std::collections::HashMap;

use drover_api::task::{Task, TaskId};
use tokio::time::Instant;

/// Accepted tasks with when their acceptance was answered.
#[derive(Debug, Default)]
pub struct AcceptedTasks {
    tasks: HashMap<TaskId, (Task, Instant)>,
}

impl AcceptedTasks {
    /// Remembers a task the master accepted, answered at `at`.
    pub fn record(&mut self, task: Task, at: Instant) {
        self.tasks.insert(task.spec.id.clone(), (task, at));
    }

    /// The accepted tasks a read sent at `as_of` cannot have shown, to add to it. Those
    /// the read shows (`shown`) are forgotten, and so are those accepted before the read
    /// was sent that it does not show: the master has no such task any more.
    pub fn unseen(
        &mut self,
        shown: impl Fn(&TaskId) -> bool,
        as_of: Option<Instant>,
    ) -> impl Iterator<Item = &Task> {
        self.tasks
            .retain(|id, (_, at)| !shown(id) && as_of.is_none_or(|read| *at >= read));
        self.tasks.values().map(|(t, _)| t)
    }

    /// Every task remembered, for reads between ticks.
    pub fn iter(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values().map(|(t, _)| t)
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use chrono::Utc;
    use drover_api::task::{TaskDefinition, TaskSpec};

    fn task(id: &str) -> Task {
        Task::staging(
            TaskSpec {
                id: TaskId::from(id),
                node: "n".into(),
                definition: TaskDefinition::default(),
                host_ports: Vec::new(),
            },
            Utc::now(),
        )
    }

    fn ids<'a>(tasks: impl Iterator<Item = &'a Task>) -> Vec<String> {
        let mut v: Vec<String> = tasks.map(|t| t.spec.id.as_str().to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn kept_until_a_newer_read_shows_them_or_says_they_are_gone() {
        let read_before = Instant::now();
        let accepted_at = read_before + Duration::from_millis(10);
        let read_after = accepted_at + Duration::from_millis(10);
        let mut a = AcceptedTasks::default();
        a.record(task("a"), accepted_at);
        a.record(task("b"), accepted_at);
        // A read sent before the acceptance shows neither: both are added.
        assert_eq!(ids(a.unseen(|_| false, Some(read_before))), ["a", "b"]);
        // No read yet: still added.
        assert_eq!(ids(a.unseen(|_| false, None)), ["a", "b"]);
        // A read that shows `a` forgets it, whatever its age.
        assert_eq!(
            ids(a.unseen(|id| id.as_str() == "a", Some(read_before))),
            ["b"]
        );
        // A read sent after the acceptance that does not show `b`: the master has no
        // such task any more.
        assert_eq!(
            ids(a.unseen(|_| false, Some(read_after))),
            Vec::<String>::new()
        );
        assert!(a.is_empty());
    }
}
