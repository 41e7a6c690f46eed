//! `drover jobs logs NAME [RUN] [--stderr] [--attempt N] [--tail BYTES]`: a run's output.

use anyhow::anyhow;
use drover_api::client::JobLogQuery;
use drover_api::task::LogStream;

use crate::cli::JobLogsArgs;
use crate::context::{Context, scheduler_error};
use crate::output;

/// Streams the run's output to stdout.
pub async fn run(ctx: &Context, args: &JobLogsArgs) -> anyhow::Result<()> {
    let offset = match args.tail {
        None => None,
        Some(n) => Some(-i64::try_from(n).map_err(|_| anyhow!("--tail {n} is too large"))?),
    };
    let query = JobLogQuery {
        stream: if args.stderr {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        },
        attempt: args.attempt,
        offset,
    };
    let sched = ctx.scheduler()?;
    let run = args.run.clone().unwrap_or_else(|| "latest".into());
    let stream = ctx
        .call_scheduler(sched.job_logs(&args.name, &run, &query))
        .await?;
    output::emit_stream(stream, |e| scheduler_error(&ctx.scheduler_url, e)).await
}
