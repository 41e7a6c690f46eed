//! Connection hygiene: the decisions behind how every server treats its connections,
//! as plain functions. [`crate::accept`] is the shell that applies them to sockets.
//!
//! # What a connection may do
//!
//! A connection is in one of three phases ([`Phase`]):
//!
//! - **headers**: from accept, or from the first byte of the next request on a kept-alive
//!   connection, until the request's headers are complete. It must finish within the
//!   *header timeout* (default 10 s) or it is closed. A client that trickles its headers
//!   (slowloris) is closed as surely as one that sends nothing.
//! - **busy**: a request is in flight, from complete headers until its response has been
//!   written to the end. No timeout applies: long polls (the agents' assignments) and
//!   streams (`/v1/events`) run as long as they need to, and graceful shutdown ends them.
//! - **idle**: kept alive between requests. It is closed after the *idle timeout*
//!   (default 60 s).
//!
//! # At the connection cap
//!
//! A server serves at most `max_connections` at once (default: what its open-file limit
//! allows, less room for its own files, see [`default_max_connections`]). The listener
//! is never left unread: a full kernel backlog is what locked agents out before, since
//! their connection attempts then wait in SYN retries for tens of seconds. Each new
//! connection, in order ([`admit`]):
//!
//! 1. is served when fewer than `max_connections - reserved` are open;
//! 2. else evicts the connection that has made no progress for longest ([`victim`]): one
//!    still waiting for headers before any idle one, the oldest first; busy connections
//!    are never evicted. A flood of slow or idle clients therefore only ever displaces
//!    itself: its oldest members go first, while any client that sends a request
//!    promptly gets it served;
//! 3. else (everything is busy) takes one of the `reserved` slots, on which only
//!    reserved traffic is served: on the master, the agent protocol (`/v1/agents/...`),
//!    so a crowd of event-stream or long-poll clients cannot keep agents from
//!    heartbeating. Another request on such a slot is answered 503 and the connection
//!    closed, unless ordinary slots have come free meanwhile;
//! 4. else is closed at once.
//!
//! Recognising agents by path after their headers (rather than reserving slots by
//! address or port) is what works against slowloris: slow clients never complete their
//! headers, so they never occupy a busy slot and are always the first evicted.

use std::time::{Duration, Instant};

/// Header timeout unless configured.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive timeout unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Open files kept back from connections at least: the store, log files, sockets to
/// agents and the master, the runtime's own descriptors.
pub const MIN_FILE_HEADROOM: u64 = 128;
/// The fewest connections a server is set to serve, whatever its file limit.
pub const MIN_CONNECTIONS: usize = 16;
/// The most connections the default allows (an unlimited file limit gives this).
pub const MAX_DEFAULT_CONNECTIONS: usize = 65_536;

/// How a server treats connections; see the module's documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// At most this many connections open at once.
    pub max_connections: usize,
    /// Of those, this many are kept for reserved traffic.
    pub reserved: usize,
    /// Path prefixes served on a reserved slot; none means no slots are reserved.
    pub reserved_paths: &'static [&'static str],
    /// Time allowed for a request's headers.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may sit between requests.
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    /// Limits from the flags: `max_connections` defaults from the process's open-file
    /// limit ([`default_max_connections`]).
    pub fn new(
        max_connections: Option<usize>,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> ConnectionLimits {
        let max_connections = max_connections
            .unwrap_or_else(|| default_max_connections(open_file_limit()))
            .max(1);
        ConnectionLimits {
            max_connections,
            reserved: 0,
            reserved_paths: &[],
            header_timeout,
            idle_timeout,
        }
    }

    /// The same limits with slots reserved ([`default_reserved`]) for requests whose path
    /// starts with one of `paths`.
    pub fn reserving(self, paths: &'static [&'static str]) -> ConnectionLimits {
        let reserved = if paths.is_empty() {
            0
        } else {
            default_reserved(self.max_connections)
        };
        ConnectionLimits {
            reserved,
            reserved_paths: paths,
            ..self
        }
    }

    /// Connections served before the reserve is touched.
    pub fn ordinary(&self) -> usize {
        self.max_connections.saturating_sub(self.reserved)
    }

    /// Whether a request for `path` may be served on a reserved slot.
    pub fn is_reserved_path(&self, path: &str) -> bool {
        self.reserved_paths.iter().any(|p| path.starts_with(p))
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::new(None, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT)
    }
}

/// The process's soft open-file limit (`RLIMIT_NOFILE`); `u64::MAX` when unlimited or
/// unknown.
pub fn open_file_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _hard)| soft)
        .unwrap_or(u64::MAX)
}

/// Connections to serve with `nofile` open files: a quarter of them (at least
/// [`MIN_FILE_HEADROOM`]) stays for the server's own files and outgoing sockets;
/// clamped to [`MIN_CONNECTIONS`]..=[`MAX_DEFAULT_CONNECTIONS`].
pub fn default_max_connections(nofile: u64) -> usize {
    let headroom = (nofile / 4).max(MIN_FILE_HEADROOM);
    let usable = nofile.saturating_sub(headroom);
    usize::try_from(usable)
        .unwrap_or(usize::MAX)
        .clamp(MIN_CONNECTIONS, MAX_DEFAULT_CONNECTIONS)
}

/// Slots kept for reserved traffic out of `max`: a sixteenth, at least 4 and at most 64,
/// never more than half.
pub fn default_reserved(max: usize) -> usize {
    (max / 16).clamp(4, 64).min(max / 2)
}

/// Where a connection is in its life; see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a request's headers since this instant.
    Headers(Instant),
    /// This many requests in flight (more than one only while hyper finishes the
    /// previous response as the next request starts).
    Busy(u32),
    /// Between requests since this instant.
    Idle(Instant),
}

/// Why a connection was closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Its request's headers took longer than the header timeout.
    Headers,
    /// It sat idle longer than the idle timeout.
    Idle,
}

/// When a connection in `phase` expires, and why; `None` while busy.
pub fn deadline(phase: Phase, limits: &ConnectionLimits) -> Option<(Instant, Expiry)> {
    match phase {
        Phase::Headers(since) => Some((since + limits.header_timeout, Expiry::Headers)),
        Phase::Idle(since) => Some((since + limits.idle_timeout, Expiry::Idle)),
        Phase::Busy(_) => None,
    }
}

/// The phase after a request's headers are complete.
pub fn request_started(phase: Phase) -> Phase {
    match phase {
        Phase::Busy(n) => Phase::Busy(n.saturating_add(1)),
        Phase::Headers(_) | Phase::Idle(_) => Phase::Busy(1),
    }
}

/// The phase after a response was written to the end (or abandoned) at `now`.
pub fn request_finished(phase: Phase, now: Instant) -> Phase {
    match phase {
        Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
        Phase::Busy(_) => Phase::Idle(now),
        other => other,
    }
}

/// The phase after bytes arrived at `now`: the first byte after idling starts the clock
/// on the next request's headers.
pub fn bytes_arrived(phase: Phase, now: Instant) -> Phase {
    match phase {
        Phase::Idle(_) => Phase::Headers(now),
        other => other,
    }
}

/// The connection to evict for a new one: of those not busy, the one waiting for headers
/// longest, else the one idle longest; `None` when every connection is busy.
pub fn victim<K: Copy>(connections: impl IntoIterator<Item = (K, Phase)>) -> Option<K> {
    connections
        .into_iter()
        .filter_map(|(key, phase)| match phase {
            Phase::Headers(since) => Some(((0u8, since), key)),
            Phase::Idle(since) => Some(((1u8, since), key)),
            Phase::Busy(_) => None,
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, key)| key)
}

/// What to do with a newly accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission<K> {
    /// Serve it.
    Serve,
    /// Close this connection, then serve the new one in its place.
    Evict(K),
    /// Serve it on a reserved slot: reserved paths only.
    Reserved,
    /// Close it at once.
    Refuse,
}

/// The decision for a new connection with `open` connections already served; `victim`
/// is what [`victim`] found among them.
pub fn admit<K>(open: usize, limits: &ConnectionLimits, victim: Option<K>) -> Admission<K> {
    if open < limits.ordinary() {
        Admission::Serve
    } else if let Some(k) = victim {
        Admission::Evict(k)
    } else if open < limits.max_connections {
        Admission::Reserved
    } else {
        Admission::Refuse
    }
}

/// Whether a request for `path` on a connection admitted to a reserved slot is served,
/// `open` connections being served now: reserved paths always; others once ordinary
/// slots are free again.
pub fn serve_on_reserved(path: &str, open: usize, limits: &ConnectionLimits) -> bool {
    limits.is_reserved_path(path) || open <= limits.ordinary()
}

/// Parses a timeout flag: a positive number of seconds (fractions allowed), at most a day.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!(
            "{s:?} must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses `--max-connections`: a whole number, at least 1.
pub fn parse_max_connections(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{s:?} must be a whole number of connections, at least 1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, reserved: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            reserved,
            reserved_paths: &["/v1/agents/"],
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn default_cap_leaves_room_for_the_servers_own_files() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(256), 128);
        assert_eq!(default_max_connections(65_536), 49_152);
        // Tiny and unlimited limits are clamped.
        assert_eq!(default_max_connections(100), MIN_CONNECTIONS);
        assert_eq!(default_max_connections(0), MIN_CONNECTIONS);
        assert_eq!(default_max_connections(u64::MAX), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(default_reserved(768), 48);
        assert_eq!(default_reserved(16), 4);
        assert_eq!(default_reserved(4), 2);
        assert_eq!(default_reserved(49_152), 64);
    }

    #[test]
    fn reserve_only_with_reserved_paths() {
        let l = ConnectionLimits::new(Some(768), DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(l.reserved, 0);
        assert_eq!(l.clone().reserving(&[]).reserved, 0);
        let r = l.reserving(&["/v1/agents/"]);
        assert_eq!((r.reserved, r.ordinary()), (48, 720));
        assert!(r.is_reserved_path("/v1/agents/a1/heartbeat"));
        assert!(!r.is_reserved_path("/v1/events"));
    }

    #[test]
    fn phases_move_with_requests_and_bytes() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let p = request_started(Phase::Headers(t0));
        assert_eq!(p, Phase::Busy(1));
        // Bytes of a body or of a pipelined request change nothing while busy.
        assert_eq!(bytes_arrived(p, t1), Phase::Busy(1));
        assert_eq!(request_started(p), Phase::Busy(2));
        assert_eq!(request_finished(Phase::Busy(2), t1), Phase::Busy(1));
        let idle = request_finished(p, t1);
        assert_eq!(idle, Phase::Idle(t1));
        assert_eq!(bytes_arrived(idle, t1), Phase::Headers(t1));
        assert_eq!(bytes_arrived(Phase::Headers(t0), t1), Phase::Headers(t0));
    }

    #[test]
    fn deadlines_by_phase() {
        let l = limits(10, 0);
        let t0 = Instant::now();
        assert_eq!(
            deadline(Phase::Headers(t0), &l),
            Some((t0 + Duration::from_secs(10), Expiry::Headers))
        );
        assert_eq!(
            deadline(Phase::Idle(t0), &l),
            Some((t0 + Duration::from_secs(60), Expiry::Idle))
        );
        assert_eq!(deadline(Phase::Busy(1), &l), None);
    }

    #[test]
    fn victim_is_the_oldest_waiting_for_headers_then_the_oldest_idle_never_busy() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        assert_eq!(
            victim([
                (1, Phase::Idle(s(0))),
                (2, Phase::Headers(s(5))),
                (3, Phase::Headers(s(3))),
                (4, Phase::Busy(1)),
            ]),
            Some(3)
        );
        assert_eq!(
            victim([
                (1, Phase::Idle(s(4))),
                (2, Phase::Busy(1)),
                (3, Phase::Idle(s(2)))
            ]),
            Some(3)
        );
        assert_eq!(victim([(1, Phase::Busy(1)), (2, Phase::Busy(3))]), None);
        assert_eq!(victim(Vec::<(u8, Phase)>::new()), None);
    }

    #[test]
    fn admission_serves_then_evicts_then_reserves_then_refuses() {
        let l = limits(10, 2);
        assert_eq!(admit(0, &l, Some(1)), Admission::Serve);
        assert_eq!(admit(7, &l, None::<u8>), Admission::Serve);
        assert_eq!(admit(8, &l, Some(5)), Admission::Evict(5));
        assert_eq!(admit(8, &l, None::<u8>), Admission::Reserved);
        assert_eq!(admit(9, &l, None::<u8>), Admission::Reserved);
        assert_eq!(admit(10, &l, None::<u8>), Admission::Refuse);
        assert_eq!(admit(10, &l, Some(2)), Admission::Evict(2));
        // Without a reserve, a full server with nothing to evict refuses.
        assert_eq!(admit(10, &limits(10, 0), None::<u8>), Admission::Refuse);
    }

    #[test]
    fn reserved_slots_serve_agent_paths_and_others_once_there_is_room() {
        let l = limits(10, 2);
        assert!(serve_on_reserved("/v1/agents/a/heartbeat", 10, &l));
        assert!(!serve_on_reserved("/v1/events", 10, &l));
        assert!(serve_on_reserved("/v1/events", 8, &l));
    }

    #[test]
    fn flag_values() {
        assert_eq!(parse_timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("NaN").is_err());
        assert!(parse_timeout("ten").is_err());
        assert_eq!(parse_max_connections("500"), Ok(500));
        assert!(parse_max_connections("0").is_err());
        assert!(parse_max_connections("-3").is_err());
    }
}
