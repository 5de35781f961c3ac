//! The one body type that flows through the sidecar, both ways.
//!
//! An enum instead of a boxed trait object: proxied bodies stream through without an allocation
//! per request, and the sidecar's own short answers (errors, admin) are a single chunk.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::upstream::{Checkin, InFlight};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub enum Body {
    Empty,
    Full(Option<Bytes>),
    /// A peer's body, streamed frame by frame (data and trailers).
    Stream(Incoming),
    /// A request body capped by the route's `max_request_body`.
    Limited(Limited<Incoming>),
    /// An upstream response body.
    Upstream(UpstreamBody),
    /// Anything else streamed by the sidecar itself (the admin API's event stream).
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

/// An upstream response body, with what depends on its end: the endpoint counts the request
/// in flight until then, and an HTTP/1.1 connection goes back to its pool once the body has
/// been read to the end (a body dropped half-read leaves the connection unusable: closed).
pub struct UpstreamBody {
    body: Incoming,
    _in_flight: InFlight,
    checkin: Option<Checkin>,
}

impl UpstreamBody {
    pub fn new(body: Incoming, in_flight: InFlight, checkin: Option<Checkin>) -> Self {
        UpstreamBody {
            body,
            _in_flight: in_flight,
            checkin,
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(checkin) = self.checkin.take().filter(|_| self.body.is_end_stream()) {
            checkin.release();
        }
    }
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Self {
        Body::Full(Some(b.into()))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Body::Upstream(u) => Pin::new(&mut u.body).poll_frame(cx).map_err(Into::into),
            Body::Limited(b) => Pin::new(b).poll_frame(cx),
            Body::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Stream(b) => b.is_end_stream(),
            Body::Upstream(u) => u.body.is_end_stream(),
            Body::Limited(b) => b.is_end_stream(),
            Body::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(b) => b.size_hint(),
            Body::Upstream(u) => u.body.size_hint(),
            Body::Limited(b) => b.size_hint(),
            Body::Boxed(b) => b.size_hint(),
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
