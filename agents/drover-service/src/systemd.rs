//! systemd's service notifications, for units with `Type=notify` and `WatchdogSec=`: the
//! server says `READY=1` once it serves, and `WATCHDOG=1` for as long as its own `/health`
//! route answers (200 or 503) within half the watchdog interval. A server whose handlers
//! hang (a lock that is never released, a runtime that no longer runs its tasks) stops
//! answering, the pings stop, and systemd restarts it. A server that answers 503 (a
//! store that cannot write) keeps pinging: it recovers by itself, and a restart would not
//! give the disk room. Outside systemd (no `NOTIFY_SOCKET`) all of this does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use tower::ServiceExt;

/// Sends `state` (`READY=1`, `WATCHDOG=1`, `STOPPING=1`) to systemd; false when not
/// running under a notify unit or the message could not be sent.
pub fn notify(state: &str) -> bool {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) => notify_to(&socket.to_string_lossy(), state),
        None => false,
    }
}

/// Sends `state` to the notification socket `path` (`@name`: an abstract socket).
fn notify_to(path: &str, state: &str) -> bool {
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(path),
    };
    let Ok(addr) = addr else {
        return false;
    };
    UnixDatagram::unbound()
        .and_then(|s| s.send_to_addr(state.as_bytes(), &addr))
        .is_ok()
}

/// The watchdog interval systemd expects pings within, when it set one for this
/// process (`WATCHDOG_USEC`, and `WATCHDOG_PID` naming this process if set).
pub fn watchdog_interval() -> Option<Duration> {
    parse_watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings systemd's watchdog every half `interval` while `router`'s `/health` answers
/// within that time; runs until the task is dropped.
pub async fn watchdog(router: Router, interval: Duration) {
    let every = interval / 2;
    loop {
        tokio::time::sleep(every).await;
        let Ok(request) = Request::get("/health").body(Body::empty()) else {
            continue;
        };
        let answered = tokio::time::timeout(every, router.clone().oneshot(request)).await;
        match answered {
            Ok(Ok(_)) => {
                notify("WATCHDOG=1");
            }
            _ => tracing::error!(
                "/health did not answer within {every:?}: not pinging systemd's watchdog"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_interval_is_for_this_process_only() {
        assert_eq!(
            parse_watchdog(Some("30000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_watchdog(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_watchdog(Some("30000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("x"), None, 7), None);
        assert_eq!(parse_watchdog(None, None, 7), None);
    }

    #[test]
    fn notifications_reach_the_socket_systemd_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        assert!(notify_to(path.to_str().unwrap(), "READY=1"));
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("drover-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_socket = UnixDatagram::bind_addr(&addr).unwrap();
        assert!(notify_to(&format!("@{name}"), "WATCHDOG=1"));
        let n = abstract_socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");

        assert!(!notify_to(
            dir.path().join("absent").to_str().unwrap(),
            "READY=1"
        ));
    }
}
