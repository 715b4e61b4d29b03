//! The HTTP listener: the router served through hyper with limits a hostile client can't outlast.
//!
//! `axum::serve` sets no timer, so hyper's header read timeout never runs, and it accepts every
//! connection: 200 clients sending a header byte per second were never cut, and a request that
//! announced a 10 GiB body waited for it. This accept loop serves the same router with:
//!
//! - a **header timeout**: each request head must arrive within `http_header_timeout`, counted from
//!   when hyper starts waiting for it — on a new connection and between keep-alive requests alike, so
//!   it is the idle keep-alive timeout too;
//! - a **body timeout**: each piece of a request body must follow the previous one within
//!   `http_body_timeout` ([`TimeoutBody`]);
//! - a **connection cap**: past `http_max_connections` open connections, new ones wait in the
//!   kernel's accept queue until one closes;
//! - **header bounds**: at most [`MAX_HEADERS`] header fields and [`MAX_HEAD_BYTES`] of request head;
//!   hyper answers `431 Request Header Fields Too Large` past them.
//!
//! A declared body above `max_request_body` is answered 413 before any of it is read (a body
//! without a declared length is cut at the limit while it is read, by the router's body limit). Shutdown stops accepting, asks every connection to finish its
//! current request, and gives up on the stragglers (a long-lived MCP stream, say) after the grace
//! period the caller passes.

use crate::config::HttpLimits;
use crate::error::Error;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// Most header fields in one request.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of request line and headers together.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open connections finish
/// their requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    max_body: usize,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    // HTTP/1.1 only: a TLS terminator in front speaks HTTP/2 to clients if wanted. Detecting a
    // cleartext HTTP/2 preface (hyper-util's `auto`) would read the first bytes with no timeout,
    // so a client that connects and sends nothing would hold its connection forever.
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEAD_BYTES);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: the listener is fine, so wait a moment rather
                    // than spin on the same error.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let too_large = declared_length(&req).is_some_and(|n| n > max_body as u64);
            let req = req.map(|body| TimeoutBody::new(body, body_timeout));
            let mut router = router.clone();
            async move {
                if too_large {
                    // Answered before reading a byte of the body; hyper closes the connection
                    // rather than drain what the client still sends.
                    return Ok(Error::PayloadTooLarge(format!(
                        "the request body is larger than the {max_body} bytes allowed \
                         (max_request_body)"
                    ))
                    .into_response());
                }
                router.call(req).await
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "closing connections still open after the shutdown grace period");
        }
    }
    Ok(())
}

/// The body size a request announces in `Content-Length`, when it does.
fn declared_length<B>(req: &http::Request<B>) -> Option<u64> {
    req.headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A request body that fails when its next piece takes longer than `timeout` to arrive, so a
/// client trickling a body can't hold a handler (and its connection) open.
pub struct TimeoutBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<B> TimeoutBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimeoutBody {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// The body of a request stopped arriving.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled for longer than {0:?}")]
pub struct BodyTimeout(Duration);

impl<B> Body for TimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.timeout;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
