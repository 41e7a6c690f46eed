//! `drover tasks`: tasks, filtered by node, state and label.

use drover_api::task::TaskFilter;

use crate::cli::TaskListArgs;
use crate::context::Context;
use crate::output;

/// The API filter for the list options: active tasks only, unless `--all` or a
/// `--state` asks for more.
pub fn filter(args: &TaskListArgs) -> TaskFilter {
    TaskFilter {
        node: args.node.clone(),
        state: args.state,
        active: if args.all || args.state.is_some() {
            None
        } else {
            Some(true)
        },
        label: args.label.clone(),
    }
}

/// Lists tasks.
pub async fn run(ctx: &Context, args: &TaskListArgs) -> anyhow::Result<()> {
    let tasks = ctx.call(ctx.master().tasks(&filter(args))).await?;
    if ctx.json {
        return output::print_json(&tasks);
    }
    if tasks.is_empty() {
        eprintln!(
            "no tasks{}",
            if args.all || args.state.is_some() {
                ""
            } else {
                " running (--all shows ended ones)"
            }
        );
        return Ok(());
    }
    output::emit(&output::tasks_table(&tasks, chrono::Utc::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_api::TaskState;

    #[test]
    fn default_lists_only_active_tasks() {
        assert_eq!(filter(&TaskListArgs::default()).active, Some(true));
        let all = TaskListArgs {
            all: true,
            ..Default::default()
        };
        assert_eq!(filter(&all).active, None);
        let killed = TaskListArgs {
            state: Some(TaskState::Killed),
            ..Default::default()
        };
        assert_eq!(filter(&killed).active, None);
        assert_eq!(filter(&killed).state, Some(TaskState::Killed));
    }
}
