//! The `hello` binary: `hello [--host HOST] [--port PORT]`.

use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "usage: hello [--host HOST] [--port PORT]

Listens on HOST (default $HELLO_HOST, else 127.0.0.1) and PORT (default $PORT0, else
$PORT, else 8000). GET / greets, GET /health is 200 or 503, POST /fail and POST /recover
flip it. HELLO_HEALTH_FILE=path fails /health while the file exists; HELLO_FAIL_HEALTH=1
starts failing.";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut host: Option<String> = None;
    let mut port: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "--host" => &mut host,
            "--port" => &mut port,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        *slot = Some(value);
    }
    let host = host
        .or_else(|| std::env::var("HELLO_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = hello::choose_port(port.as_deref(), |k| std::env::var(k).ok())?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    hello::serve(listener, hello::Config::from_env(), shutdown_signal())
        .await
        .map_err(|e| format!("serving failed: {e}"))
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
