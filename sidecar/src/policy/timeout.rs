//! The route timeout: one deadline over every try, until the response head.
//!
//! tower's `Timeout` boxes its timer, an allocation per request; here the timer lives inside
//! the response future, and the elapsed case is already the classified [`ProxyError`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ballast_model::ErrorClass;
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::body::BoxError;
use crate::proxy::ProxyError;

#[derive(Clone, Copy)]
pub struct RouteTimeoutLayer(pub Duration);

impl<S> Layer<S> for RouteTimeoutLayer {
    type Service = RouteTimeout<S>;

    fn layer(&self, inner: S) -> RouteTimeout<S> {
        RouteTimeout { inner, limit: self.0 }
    }
}

#[derive(Clone)]
pub struct RouteTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S, R> Service<R> for RouteTimeout<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Deadline<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        Deadline::new(self.inner.call(req), self.limit)
    }
}

pin_project_lite::pin_project! {
    pub struct Deadline<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
    }
}

impl<F> Deadline<F> {
    /// `inner`, failed with a timeout once `limit` has passed (counted from now).
    pub fn new(inner: F, limit: Duration) -> Self {
        Deadline {
            inner,
            sleep: tokio::time::sleep(limit),
        }
    }
}

impl<F, T, E> Future for Deadline<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(ProxyError::new(ErrorClass::Timeout, "route timeout elapsed").into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_passes_and_a_late_one_is_a_timeout() {
        let slow = tower::service_fn(|wait: u64| async move {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Ok::<_, ProxyError>(wait)
        });
        let svc = RouteTimeoutLayer(Duration::from_millis(100)).layer(slow);
        assert_eq!(svc.clone().oneshot(50).await.unwrap(), 50);
        let err = svc.oneshot(150).await.unwrap_err();
        assert_eq!(ProxyError::from_boxed(err).class, ErrorClass::Timeout);
    }
}
