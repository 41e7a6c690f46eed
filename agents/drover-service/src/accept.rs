//! The accept loop every server runs: HTTP/1.1 over hyper with the connection rules of
//! [`crate::connections`] (header and idle timeouts, the connection cap, eviction and the
//! reserve), and graceful shutdown.
//!
//! Each connection runs in a task of its own with a watchdog beside hyper: the phase it
//! is in lives in one shared table, updated as bytes arrive (a wrapper around the
//! socket), as a request starts (the service wrapper) and as its response ends (a
//! wrapper around the response body, dropped by hyper when the body is written out).
//! The watchdog closes the connection at its phase's deadline or when the accept loop
//! evicts it, by dropping hyper's connection, which closes the socket. Busy connections
//! are never closed that way.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use drover_api::{ApiError, ErrorCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

use crate::connections::{
    Admission, ConnectionLimits, Expiry, Phase, admit, bytes_arrived, deadline, request_finished,
    request_started, serve_on_reserved, victim,
};
use crate::http::HttpError;

/// How often at most the shedding of connections is logged (with counts since).
const LOG_EVERY: Duration = Duration::from_secs(10);
/// The pause after an accept that failed for want of files or memory, before trying
/// again (after evicting a connection to free one).
const RESOURCE_PAUSE: Duration = Duration::from_millis(20);

/// Serves `router` on `listener` under `limits` until `shutdown` resolves; then stops
/// accepting, closes connections between requests, lets requests in flight finish, and
/// returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let table = Arc::new(Table::new(limits));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    tracing::debug!(
        max_connections = table.limits.max_connections,
        reserved = table.limits.reserved,
        header_timeout_s = table.limits.header_timeout.as_secs_f64(),
        idle_timeout_s = table.limits.idle_timeout.as_secs_f64(),
        "serving"
    );
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of files (or memory): free one by evicting a connection that is
                // making no progress, and try again soon rather than leave the backlog
                // to fill.
                table.accept_failed(&e);
                tokio::time::sleep(RESOURCE_PAUSE).await;
                continue;
            }
        };
        let Some((conn, restricted)) = table.admit() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            table.clone(),
            conn,
            restricted,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    // Every connection task holds a receiver: all are gone once every connection closed.
    stop_tx.closed().await;
    Ok(())
}

/// Errors of one connection that came and went before it was accepted; the listener is
/// fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}

/// One connection's entry in the table.
#[derive(Debug)]
struct Entry {
    phase: Phase,
    /// Admitted to a reserved slot: only reserved paths are served while the server is
    /// past its ordinary slots.
    restricted: bool,
    /// Wakes its watchdog when its phase changes or it is evicted.
    wake: Arc<Notify>,
}

/// Counts of connections closed by the server, for the periodic log line.
#[derive(Debug, Default)]
struct Shed {
    header_timeouts: u64,
    evicted: u64,
    refused: u64,
    reserved_refusals: u64,
    accept_failures: u64,
    last_logged: Option<Instant>,
}

impl Shed {
    fn any(&self) -> bool {
        self.header_timeouts
            + self.evicted
            + self.refused
            + self.reserved_refusals
            + self.accept_failures
            > 0
    }
}

/// Every open connection, by id.
#[derive(Debug)]
struct Table {
    limits: ConnectionLimits,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    entries: HashMap<u64, Entry>,
    shed: Shed,
}

/// A connection's handle on its entry.
#[derive(Debug, Clone)]
struct Conn {
    id: u64,
    wake: Arc<Notify>,
}

impl Table {
    fn new(limits: ConnectionLimits) -> Table {
        Table {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the table consistent (every change is
        // one map operation), so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides on a new connection; `None` refuses it. Returns the new connection's
    /// handle and whether it took a reserved slot.
    fn admit(&self) -> Option<(Conn, bool)> {
        let mut inner = self.lock();
        let open = inner.entries.len();
        let candidate = if open >= self.limits.ordinary() {
            victim(inner.entries.iter().map(|(id, e)| (*id, e.phase)))
        } else {
            None
        };
        let restricted = match admit(open, &self.limits, candidate) {
            Admission::Serve => false,
            Admission::Evict(id) => {
                if let Some(e) = inner.entries.remove(&id) {
                    e.wake.notify_one();
                }
                inner.shed.evicted += 1;
                false
            }
            Admission::Reserved => true,
            Admission::Refuse => {
                inner.shed.refused += 1;
                self.maybe_log(&mut inner);
                return None;
            }
        };
        self.maybe_log(&mut inner);
        let id = inner.next_id;
        inner.next_id += 1;
        let wake = Arc::new(Notify::new());
        inner.entries.insert(
            id,
            Entry {
                phase: Phase::Headers(Instant::now()),
                restricted,
                wake: wake.clone(),
            },
        );
        Some((Conn { id, wake }, restricted))
    }

    /// Counts a failed accept (out of files or memory) and evicts the connection that
    /// made no progress for longest, if any, to free its file.
    fn accept_failed(&self, error: &std::io::Error) {
        let mut inner = self.lock();
        tracing::debug!("accept failed: {error}");
        inner.shed.accept_failures += 1;
        if let Some(id) = victim(inner.entries.iter().map(|(id, e)| (*id, e.phase))) {
            if let Some(e) = inner.entries.remove(&id) {
                e.wake.notify_one();
            }
            inner.shed.evicted += 1;
        }
        self.maybe_log(&mut inner);
    }

    /// Moves `conn` to its next phase; wakes its watchdog when the deadline changed.
    fn update(&self, conn: &Conn, next: impl FnOnce(Phase) -> Phase) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(&conn.id) {
            let before = e.phase;
            e.phase = next(before);
            if e.phase != before {
                e.wake.notify_one();
            }
        }
    }

    /// The connection's phase; `None` once evicted.
    fn phase(&self, conn: &Conn) -> Option<Phase> {
        self.lock().entries.get(&conn.id).map(|e| e.phase)
    }

    /// Whether a request for `path` may be served on `conn`; a restricted connection
    /// becomes an ordinary one once there is room.
    fn may_serve(&self, conn: &Conn, path: &str) -> bool {
        let mut inner = self.lock();
        let open = inner.entries.len();
        let Some(e) = inner.entries.get_mut(&conn.id) else {
            return true;
        };
        if !e.restricted {
            return true;
        }
        if serve_on_reserved(path, open, &self.limits) {
            if !self.limits.is_reserved_path(path) {
                e.restricted = false;
            }
            return true;
        }
        inner.shed.reserved_refusals += 1;
        self.maybe_log(&mut inner);
        false
    }

    fn closed(&self, conn: &Conn, expired: Option<Expiry>) {
        let mut inner = self.lock();
        inner.entries.remove(&conn.id);
        if expired == Some(Expiry::Headers) {
            inner.shed.header_timeouts += 1;
            self.maybe_log(&mut inner);
        }
    }

    /// Logs what was shed since the last line, at most every [`LOG_EVERY`]: under a
    /// flood, one line per connection would be a flood of its own.
    fn maybe_log(&self, inner: &mut Inner) {
        let now = Instant::now();
        if !inner.shed.any() || inner.shed.last_logged.is_some_and(|t| now - t < LOG_EVERY) {
            return;
        }
        let shed = std::mem::take(&mut inner.shed);
        inner.shed.last_logged = Some(now);
        tracing::warn!(
            open = inner.entries.len(),
            max_connections = self.limits.max_connections,
            header_timeouts = shed.header_timeouts,
            evicted = shed.evicted,
            refused = shed.refused,
            refused_on_reserved_slots = shed.reserved_refusals,
            accepts_failed_for_want_of_files = shed.accept_failures,
            "closed connections that were slow to send their headers or arrived at the connection cap"
        );
    }
}

/// Serves one connection until it closes, expires, is evicted, or shutdown finds it
/// between requests.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    table: Arc<Table>,
    conn: Conn,
    restricted: bool,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Tracked {
        inner: stream,
        table: table.clone(),
        conn: conn.clone(),
    });
    let service = {
        let table = table.clone();
        let conn = conn.clone();
        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            handle(req, router.clone(), table.clone(), conn.clone(), restricted)
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog applies the header timeout (hyper's own would also close idle
    // kept-alive connections at the same deadline).
    builder.header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    let mut expired = None;
    // An evicted connection has no phase any more.
    while let Some(phase) = table.phase(&conn) {
        let busy = matches!(phase, Phase::Busy(_));
        if stopping && !busy {
            break;
        }
        let due = deadline(phase, &table.limits);
        if let Some((at, why)) = due
            && at <= Instant::now()
        {
            expired = Some(why);
            break;
        }
        let sleep = async {
            match due {
                Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                break;
            }
            () = sleep => {}
            () = conn.wake.notified() => {}
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
    table.closed(&conn, expired);
    if let Some(why) = expired {
        tracing::debug!(?why, "closed an expired connection");
    }
}

/// One request: checks the reserve, marks the connection busy until the response body
/// is written out (or dropped), and runs the router.
async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    router: Router,
    table: Arc<Table>,
    conn: Conn,
    restricted: bool,
) -> Result<Response, Infallible> {
    table.update(&conn, request_started);
    let guard = InFlight { table, conn };
    if restricted && !guard.table.may_serve(&guard.conn, req.uri().path()) {
        let mut response = HttpError(ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "the server is at its connection limit ({}): retry later",
                guard.table.limits.max_connections
            ),
        ))
        .into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return Ok(track(response, guard));
    }
    let response = match router.oneshot(req.map(Body::new)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    Ok(track(response, guard))
}

fn track(response: Response, guard: InFlight) -> Response {
    response.map(|body| {
        Body::new(TrackedBody {
            inner: body,
            _guard: guard,
        })
    })
}

/// A request in flight; its drop marks the response finished.
struct InFlight {
    table: Arc<Table>,
    conn: Conn,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = Instant::now();
        self.table
            .update(&self.conn, |phase| request_finished(phase, now));
    }
}

/// A response body that holds its request's [`InFlight`] until hyper drops it: once it
/// is written to the end, or when the connection goes.
struct TrackedBody {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when bytes arrive on an idle connection (the next request began).
struct Tracked {
    inner: TcpStream,
    table: Arc<Table>,
    conn: Conn,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = Instant::now();
            self.table
                .update(&self.conn, |phase| bytes_arrived(phase, now));
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
