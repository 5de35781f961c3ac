//! Response bodies under a fault: paced to a bandwidth, or cut after some bytes.
//!
//! Pacing keeps a schedule from the first byte (byte `n` is due at `start + n / rate`), so the
//! long-run rate is exact however the upstream chunks its body; large chunks are split so the
//! client sees a steady trickle rather than bursts.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::http::Slot;
use crate::body::{Body, BoxError};

/// How a response body is shaped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Bytes per second.
    pub rate: Option<u64>,
    /// Bytes let through before the body is cut.
    pub truncate: Option<u64>,
}

impl Shape {
    pub fn is_none(&self) -> bool {
        self.rate.is_none() && self.truncate.is_none()
    }

    /// Combine two shapes: the slower rate and the shorter cut win.
    pub fn and(self, other: Shape) -> Shape {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Shape {
            rate: min(self.rate, other.rate),
            truncate: min(self.truncate, other.truncate),
        }
    }
}

/// The pause between the last byte let through and the cut.
const FLUSH_GRACE: Duration = Duration::from_millis(20);

/// The body was cut on purpose by a `truncate` fault.
#[derive(Debug, thiserror::Error)]
#[error("response body truncated by a fault")]
pub struct Truncated;

pub struct Shaped {
    inner: Body,
    shape: Shape,
    /// Data read from `inner` and not yet passed on.
    pending: Bytes,
    sent: u64,
    start: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether the pause before a cut has been taken.
    flushed: bool,
    /// Keeps the request counted as under a fault until the body is done.
    _guard: Option<Slot>,
}

impl Shaped {
    pub fn new(inner: Body, shape: Shape, guard: Option<Slot>) -> Self {
        Shaped {
            inner,
            shape,
            pending: Bytes::new(),
            sent: 0,
            start: None,
            sleep: None,
            flushed: false,
            _guard: guard,
        }
    }

    /// The largest piece passed on at once: a twentieth of a second's worth at the rate.
    fn piece(&self) -> usize {
        self.shape.rate.map_or(usize::MAX, |r| (r / 20).max(1) as usize)
    }
}

impl HttpBody for Shaped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = &mut this.sleep {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
            }
            if this.shape.truncate.is_some_and(|cut| this.sent >= cut) {
                // Give the server a moment to flush what was let through (it flushes while the
                // body is pending), or the client would see no response at all.
                if !this.flushed {
                    this.flushed = true;
                    this.sleep = Some(Box::pin(tokio::time::sleep(FLUSH_GRACE)));
                    continue;
                }
                return Poll::Ready(Some(Err(Truncated.into())));
            }
            if !this.pending.is_empty() {
                let mut n = this.pending.len().min(this.piece());
                if let Some(cut) = this.shape.truncate {
                    n = n.min((cut - this.sent) as usize);
                }
                let piece = this.pending.split_to(n);
                this.sent += n as u64;
                if let Some(rate) = this.shape.rate {
                    let start = *this.start.get_or_insert_with(Instant::now);
                    let due = start + Duration::from_secs_f64(this.sent as f64 / rate as f64);
                    if due > Instant::now() {
                        this.sleep = Some(Box::pin(tokio::time::sleep_until(due)));
                    }
                }
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(cut) = self.shape.truncate {
            // The client is told the original length: the cut shows up as a short body.
            hint.set_upper(hint.upper().unwrap_or(u64::MAX).max(cut));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn bandwidth_paces_the_body_to_the_rate() {
        let body = Body::full(vec![7u8; 10_000]);
        let shaped = Shaped::new(
            body,
            Shape {
                rate: Some(2_000),
                truncate: None,
            },
            None,
        );
        let t0 = Instant::now();
        let bytes = shaped.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 10_000);
        // The last piece (100 bytes at 2000 B/s = 1/20 s) goes out when due, without a wait after it.
        let took = t0.elapsed().as_secs_f64();
        assert!((4.9..=5.01).contains(&took), "{took}");
    }

    #[tokio::test]
    async fn truncate_cuts_the_body_with_an_error() {
        let body = Body::full(vec![7u8; 1000]);
        let mut shaped = Shaped::new(
            body,
            Shape {
                rate: None,
                truncate: Some(300),
            },
            None,
        );
        let mut got = 0;
        let err = loop {
            match shaped.frame().await {
                Some(Ok(f)) => got += f.into_data().unwrap().len(),
                Some(Err(e)) => break e,
                None => panic!("the body ended without the cut"),
            }
        };
        assert_eq!(got, 300);
        assert!(err.is::<Truncated>());
    }

    #[test]
    fn shapes_combine_to_the_harsher() {
        let a = Shape {
            rate: Some(100),
            truncate: None,
        };
        let b = Shape {
            rate: Some(50),
            truncate: Some(9),
        };
        assert_eq!(
            a.and(b),
            Shape {
                rate: Some(50),
                truncate: Some(9)
            }
        );
        assert!(Shape::default().is_none());
    }
}
