//! The one body type that flows through the sidecar, both ways.
//!
//! An enum of concrete bodies instead of a boxed trait object: proxied bodies stream through
//! without an allocation per request, and the sidecar's own short answers are one chunk. A
//! body may carry a [`Tap`] that counts its bytes into the route's, cluster's and endpoint's
//! meters when it is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::faults::http::Slot;
use crate::faults::shape::{Shape, Shaped};
use crate::telemetry::Meter;
use crate::upstream::{InFlight, Received};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct Body {
    inner: Inner,
    tap: Option<Tap>,
    /// The endpoint whose answer this is (for the access log and retries): a field rather
    /// than a response extension, which would cost three allocations per response.
    answered_by: Option<Arc<str>>,
}

enum Inner {
    Full(Option<Bytes>),
    /// A peer's body, streamed frame by frame (data and trailers).
    Stream(Incoming),
    /// A request body capped by the route's `max_request_body`.
    Limited(Box<Limited<Body>>),
    /// An upstream response body.
    Upstream(UpstreamBody),
    /// Anything else streamed by the sidecar itself (the admin API's event stream).
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
    /// A body under a bandwidth or truncate fault.
    Shaped(Box<Shaped>),
    /// A request body read ahead for retries, sent (again) whole: data, then trailers.
    /// (The trailers boxed: rare, and a map would make every body larger.)
    Replay(Option<Bytes>, Option<Box<http::HeaderMap>>),
    /// A request body read ahead past the retry buffer: what was read, then the rest.
    Prefixed(Option<Bytes>, Box<Body>),
}

/// Which way a body travels, for byte counts: in from the client, or out to it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// Counts a body's bytes; adds them to its meters when the body is dropped.
struct Tap {
    direction: Direction,
    bytes: u64,
    route: Option<Arc<Meter>>,
    upstream: Option<(Arc<Meter>, Arc<Meter>)>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return; // most requests have no body
        }
        let (bytes_in, bytes_out) = match self.direction {
            Direction::In => (self.bytes, 0),
            Direction::Out => (0, self.bytes),
        };
        let upstream = self.upstream.iter().flat_map(|(c, e)| [c, e]);
        for meter in self.route.iter().chain(upstream) {
            meter.add_bytes(bytes_in, bytes_out);
        }
    }
}

impl Body {
    fn new(inner: Inner) -> Self {
        Body {
            inner,
            tap: None,
            answered_by: None,
        }
    }

    /// The endpoint that answered with this body, if one did.
    pub fn answered_by(&self) -> Option<&Arc<str>> {
        self.answered_by.as_ref()
    }

    pub fn set_answered_by(&mut self, endpoint: Arc<str>) {
        self.answered_by = Some(endpoint);
    }

    /// No body at all (ended before its first frame).
    pub fn empty() -> Self {
        Body::new(Inner::Full(None))
    }

    pub fn full(b: impl Into<Bytes>) -> Self {
        Body::new(Inner::Full(Some(b.into())))
    }

    pub fn stream(b: Incoming) -> Self {
        Body::new(Inner::Stream(b))
    }

    /// This body, failing once it goes over `limit` bytes.
    pub fn limited(self, limit: usize) -> Self {
        Body::new(Inner::Limited(Box::new(Limited::new(self, limit))))
    }

    pub fn upstream(b: UpstreamBody) -> Self {
        Body::new(Inner::Upstream(b))
    }

    pub fn boxed(b: UnsyncBoxBody<Bytes, BoxError>) -> Self {
        Body::new(Inner::Boxed(b))
    }

    pub fn replay(data: Bytes, trailers: Option<http::HeaderMap>) -> Self {
        Body::new(Inner::Replay(
            Some(data).filter(|d| !d.is_empty()),
            trailers.map(Box::new),
        ))
    }

    pub fn prefixed(read: Bytes, rest: Body) -> Self {
        Body::new(Inner::Prefixed(Some(read), Box::new(rest)))
    }

    /// This body under a bandwidth or truncate fault (its byte counts stay with it).
    pub fn shaped(mut self, shape: Shape, guard: Option<Slot>) -> Self {
        let answered_by = self.answered_by.take();
        let mut shaped = Body::new(Inner::Shaped(Box::new(Shaped::new(self, shape, guard))));
        shaped.answered_by = answered_by;
        shaped
    }

    fn tap(&mut self, direction: Direction) -> &mut Tap {
        self.tap.get_or_insert(Tap {
            direction,
            bytes: 0,
            route: None,
            upstream: None,
        })
    }

    /// Count this body's bytes for a route.
    pub fn meter_route(&mut self, meter: &Arc<Meter>, direction: Direction) {
        if meter.enabled() && !self.is_end_stream() {
            self.tap(direction).route = Some(meter.clone());
        }
    }

    /// Count this body's bytes for a cluster and one of its endpoints.
    pub fn meter_upstream(&mut self, cluster: &Arc<Meter>, endpoint: &Arc<Meter>, direction: Direction) {
        if cluster.enabled() && !self.is_end_stream() {
            self.tap(direction).upstream = Some((cluster.clone(), endpoint.clone()));
        }
    }
}

/// An upstream response body; the endpoint counts the request in flight until it is dropped.
/// (An HTTP/1.1 connection goes back to its pool once the body has been read to the end; a body
/// dropped half-read leaves the connection unusable: closed.)
pub struct UpstreamBody {
    body: Received,
    _in_flight: InFlight,
}

impl UpstreamBody {
    pub fn new(body: Received, in_flight: InFlight) -> Self {
        UpstreamBody {
            body,
            _in_flight: in_flight,
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.body {
            Received::Http1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Received::Http2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Received::Http1(b) => b.is_end_stream(),
            Received::Http2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Received::Http1(b) => b.size_hint(),
            Received::Http2(b) => b.size_hint(),
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Upstream(u) => u.poll_frame(cx),
            Inner::Limited(b) => Pin::new(&mut **b).poll_frame(cx),
            Inner::Boxed(b) => Pin::new(b).poll_frame(cx),
            Inner::Shaped(b) => Pin::new(&mut **b).poll_frame(cx),
            Inner::Replay(data, trailers) => Poll::Ready(match data.take() {
                Some(d) => Some(Ok(Frame::data(d))),
                None => trailers.take().map(|t| Ok(Frame::trailers(*t))),
            }),
            Inner::Prefixed(read, rest) => match read.take() {
                Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
                None => Pin::new(&mut **rest).poll_frame(cx),
            },
        };
        if let (Some(tap), Poll::Ready(Some(Ok(frame)))) = (&mut this.tap, &polled)
            && let Some(data) = frame.data_ref()
        {
            tap.bytes += data.remaining() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.is_none(),
            Inner::Stream(b) => b.is_end_stream(),
            Inner::Upstream(u) => u.is_end_stream(),
            Inner::Limited(b) => b.is_end_stream(),
            Inner::Boxed(b) => b.is_end_stream(),
            Inner::Shaped(b) => b.is_end_stream(),
            Inner::Replay(data, trailers) => data.is_none() && trailers.is_none(),
            Inner::Prefixed(read, rest) => read.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Stream(b) => b.size_hint(),
            Inner::Upstream(u) => u.size_hint(),
            Inner::Limited(b) => b.size_hint(),
            Inner::Boxed(b) => b.size_hint(),
            Inner::Shaped(b) => b.size_hint(),
            Inner::Replay(data, _) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Inner::Prefixed(read, rest) => {
                let read = read.as_ref().map_or(0, |d| d.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + read);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + read);
                }
                hint
            }
        }
    }
}

/// Whether an error (or any error it wraps) is a request body over its limit.
pub fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}
