//! Graceful shutdown of the real scheduler on loopback: it returns while a client holds
//! `/v2/events` open (the stream ends instead of holding the server up), and the client
//! sees its stream end cleanly. No master is needed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt;

mod common;
use common::{TestScheduler, start_scheduler};

/// Far beyond any shutdown: only a hang reaches it.
const HANG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_event_streams() {
    let dir = tempfile::tempdir().unwrap();
    let TestScheduler {
        base,
        stop: stop_tx,
        server,
    } = start_scheduler(dir.path()).await;

    // Two subscribers: the stream is open once its headers arrive.
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let resp = http.get(format!("{base}/v2/events")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        streams.push(resp.bytes_stream());
    }

    stop_tx.send(()).unwrap();
    tokio::time::timeout(HANG, server)
        .await
        .expect("the scheduler did not stop while event streams were open")
        .unwrap()
        .unwrap();
    for mut s in streams {
        // Keep-alive comments may come first; the stream then ends without an error.
        while let Some(chunk) = tokio::time::timeout(HANG, s.next())
            .await
            .expect("an event stream stayed open after shutdown")
        {
            chunk.unwrap();
        }
    }
}
