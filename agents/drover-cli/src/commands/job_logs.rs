//! `drover jobs logs NAME [RUN] [--stderr] [--attempt N] [--tail BYTES]`: a run's output.

use anyhow::{Context as _, anyhow};
use drover_api::client::JobLogQuery;
use drover_api::task::LogStream;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::cli::JobLogsArgs;
use crate::context::{Context, scheduler_error};

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
    let mut stream = std::pin::pin!(stream);
    let mut out = tokio::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| scheduler_error(&ctx.scheduler_url, e))
            .context("the log stream broke off")?;
        match out.write_all(&chunk).await.and(out.flush().await) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("failed to write to stdout"),
        }
    }
    Ok(())
}
