//! `drover tasks logs TASK [-f] [--stderr] [--tail BYTES]`: a task's raw output on stdout.

use anyhow::anyhow;
use drover_api::task::{LogQuery, LogStream};

use crate::cli::TaskLogsArgs;
use crate::context::{Context, client_error, task_id};
use crate::output;

/// The API query for the log options.
pub fn query(args: &TaskLogsArgs) -> anyhow::Result<LogQuery> {
    let offset = match args.tail {
        None => None,
        Some(n) => Some(-i64::try_from(n).map_err(|_| anyhow!("--tail {n} is too large"))?),
    };
    Ok(LogQuery {
        stream: if args.stderr {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        },
        follow: args.follow,
        offset,
    })
}

/// Streams the task's output to stdout until the master ends the body (or, with
/// `--follow`, until interrupted).
pub async fn run(ctx: &Context, args: &TaskLogsArgs) -> anyhow::Result<()> {
    let id = task_id(&args.task)?;
    let query = query(args)?;
    let stream = ctx.call(ctx.master().logs(&id, &query)).await?;
    output::emit_stream(stream, |e| client_error(&ctx.master_url, e)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_counts_back_from_the_end() {
        let args = TaskLogsArgs {
            task: "t.1".into(),
            follow: true,
            stderr: true,
            tail: Some(100),
        };
        let q = query(&args).expect("query");
        assert_eq!(q.offset, Some(-100));
        assert_eq!(q.stream, LogStream::Stderr);
        assert!(q.follow);
        let huge = TaskLogsArgs {
            tail: Some(u64::MAX),
            ..args
        };
        assert!(query(&huge).is_err());
    }
}
