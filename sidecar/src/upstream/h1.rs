//! HTTP/1.1 to an endpoint, on the request's own task.
//!
//! hyper's client drives each connection in a task of its own and hands it requests over a
//! channel; with its generic encoder and parser that was a third of the sidecar's instructions
//! per request (callgrind, bench/RESULTS.md §2). A proxy needs less: here the request's task
//! writes the head from a buffer the connection keeps, reads the answer's head with httparse,
//! and the response body reads the rest from the same connection and hands the connection back
//! to its pool ([`Checkin`]) the moment the body ends.
//!
//! Framing follows RFC 9112 §6: no body for HEAD, 1xx, 204 and 304; chunked when the last
//! transfer coding is chunked; a Content-Length (several that differ are refused); otherwise
//! until the endpoint closes (that connection is not reused). The headers about this hop alone
//! (`Transfer-Encoding`, `Keep-Alive`, a `Connection` of only `keep-alive`/`close`) are consumed
//! here rather than passed on for the gateway to strip. Interim 1xx answers are skipped;
//! a 101 hands the connection over ([`ResponseBody::take_upgraded`]). A request body streams
//! as it arrives, chunked when its length is unknown; if the answer's head arrives before the
//! request body is all sent, sending stops and the connection closes after the answer (as
//! nginx does).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ballast_model::ErrorClass;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version, request};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::pool::{Checkin, Opened};
use crate::body::{Body, BoxError, is_length_limit};
use crate::http1::{
    WriteError, head_end, header_name, header_value, make_room, parse_length, put_field, put_length, write_body,
};
use crate::worker::bunched;

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Most headers an answer may carry, as hyper's default.
const MAX_HEADERS: usize = 100;
/// Headers parsed without a heap allocation.
const FEW_HEADERS: usize = 24;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Read buffer space made available when less than `MIN_READ_SPACE` is left.
const READ_SPACE: usize = 16 * 1024;
const MIN_READ_SPACE: usize = 4 * 1024;

/// An open HTTP/1.1 connection to one endpoint, with its buffers.
pub struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    read: BytesMut,
    /// The request being written.
    out: Vec<u8>,
    /// Counts the connection against its cluster's limits while it is open.
    _opened: Opened,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint closed (or reset) the connection before sending a byte of its answer: a
    /// reused connection it had already closed, when the request was on a reused one.
    #[error("connection closed before the response")]
    Closed(#[source] Option<io::Error>),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    #[error("request body: {0}")]
    RequestBody(#[source] BoxError),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => ErrorClass::Timeout,
            Error::Io(e) if e.kind() == io::ErrorKind::InvalidData => ErrorClass::Protocol,
            Error::Io(_) | Error::Closed(_) => ErrorClass::Reset,
            Error::Invalid(_) => ErrorClass::Protocol,
            Error::RequestBody(e) if is_length_limit(&**e) => ErrorClass::BodyTooLarge,
            Error::RequestBody(_) => ErrorClass::BadRequest,
        }
    }

    /// Closed before answering: on a reused connection, a request worth sending again.
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed(_))
    }
}

/// Whether an I/O error means the peer is gone (rather than something else went wrong).
fn peer_gone(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

impl Conn {
    /// Boxed for its whole life: it rides in every response body (and the futures and
    /// moves of every request), where a pointer is cheaper to carry than its 104 bytes.
    pub(super) fn new(stream: TcpStream, opened: Opened) -> Box<Self> {
        Box::new(Conn {
            stream,
            read: BytesMut::with_capacity(READ_SPACE),
            out: Vec::with_capacity(1024),
            _opened: opened,
        })
    }

    /// Whether an idle connection may take a request: the endpoint has not closed it and sent
    /// nothing unasked. Costs no system call unless the socket was reported readable.
    pub(super) fn is_idle_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Read more into the buffer: the number of bytes read, 0 at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        make_room(&mut self.read, MIN_READ_SPACE, READ_SPACE);
        loop {
            match self.stream.try_read_buf(&mut self.read) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.stream.poll_read_ready(cx))?,
                res => return Poll::Ready(res),
            }
        }
    }

    /// Send one request and read its answer's head; the body follows through the returned
    /// response, which owns the connection from here on.
    ///
    /// The head is encoded before the returned future starts, so that future holds neither
    /// the request's head nor, as an `async fn` would, a second copy of its arguments.
    pub fn send(
        mut self: Box<Self>,
        head: &request::Parts,
        body: Body,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Error>> + Send + use<> {
        let length = if body.is_end_stream() {
            Some(0)
        } else {
            body.size_hint().exact()
        };
        self.out.clear();
        encode_head(&mut self.out, head, length);
        let method = head.method.clone();
        async move {
            let ((status, version, headers, framing, keep_alive), sent_all) = if length == Some(0) {
                // Most requests: the head alone, one write.
                if let Err(e) = bunched(&mut self.stream).write_all(&self.out).await {
                    return Err(if peer_gone(&e) {
                        Error::Closed(Some(e))
                    } else {
                        e.into()
                    });
                }
                let Conn { stream, read, .. } = &mut *self;
                (read_head_from(stream, read, &method).await?, true)
            } else {
                // Boxed: a request with a body is the rarer case, and its future is large.
                Box::pin(self.send_body_and_read(&method, body, length.is_none())).await?
            };
            let upgraded = matches!(framing, Framing::Upgraded);
            let mut resp = Response::new(ResponseBody {
                framing,
                reusable: keep_alive && sent_all && !upgraded,
                conn: Some(self),
                checkin: None,
            });
            *resp.status_mut() = status;
            *resp.version_mut() = version;
            *resp.headers_mut() = headers;
            Ok(resp)
        }
    }

    /// Stream the body while watching for the answer: its head, and whether the body was
    /// all sent.
    async fn send_body_and_read(&mut self, method: &Method, body: Body, chunked: bool) -> Result<(Head, bool), Error> {
        let Conn { stream, read, out, .. } = self;
        let (mut rd, mut wr) = stream.split();
        let sending = async {
            match write_body(&mut bunched(&mut wr), out, body, chunked).await {
                Ok(_) => Ok(()),
                Err(WriteError::Body(e)) => Err(Error::RequestBody(e)),
                Err(WriteError::Io(e)) => Err(Error::Io(e)),
            }
        };
        tokio::pin!(sending);
        let reading = read_head_from(&mut rd, read, method);
        tokio::pin!(reading);
        // None while the body is still going out.
        let mut sent: Option<Result<(), Error>> = None;
        loop {
            tokio::select! {
                biased;
                head = &mut reading => {
                    return match (head, sent) {
                        // Nothing came back: the write's failure says more.
                        (Err(_), Some(Err(e))) => Err(e),
                        (head, sent) => Ok((head?, matches!(sent, Some(Ok(()))))),
                    };
                }
                done = &mut sending, if sent.is_none() => match done {
                    Err(e @ Error::RequestBody(_)) => return Err(e),
                    // A failed write may be the endpoint answering early and closing: read on.
                    done => sent = Some(done),
                },
            }
        }
    }
}

/// Status, version, headers, how the body is framed, and whether the connection stays open.
type Head = (StatusCode, Version, HeaderMap, Framing, bool);

/// Write the request line and headers. `length`: the body's exact length, if known (else the
/// body goes chunked). Hop-by-hop headers were removed by the gateway; framing is ours.
fn encode_head(out: &mut Vec<u8>, head: &request::Parts, length: Option<u64>) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    match (&head.method, head.uri.path_and_query()) {
        (&Method::CONNECT, _) => out.extend_from_slice(head.uri.authority().map_or("", |a| a.as_str()).as_bytes()),
        (_, Some(pq)) => out.extend_from_slice(pq.as_str().as_bytes()),
        (_, None) => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &head.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        put_field(out, name, value);
    }
    match length {
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        // An empty body needs no length, unless the method usually has one (as curl sends it).
        Some(0) if !matches!(head.method, Method::POST | Method::PUT | Method::PATCH) => {}
        Some(n) => {
            put_length(out, n);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Read until a final response head is complete (skipping interim 1xx answers but 101).
async fn read_head_from(
    rd: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Head, Error> {
    let mut received = false;
    loop {
        if !buf.is_empty() {
            received = true;
            if let Some(head) = parse_head(buf, method)? {
                if head.0.is_informational() && head.0 != StatusCode::SWITCHING_PROTOCOLS {
                    continue;
                }
                return Ok(head);
            }
            if buf.len() > MAX_HEAD {
                return Err(Error::Invalid("response head too large"));
            }
        }
        make_room(buf, MIN_READ_SPACE, READ_SPACE);
        match tokio::io::AsyncReadExt::read_buf(rd, buf).await {
            Ok(0) if received => return Err(Error::Invalid("connection closed inside the response head")),
            Ok(0) => return Err(Error::Closed(None)),
            Ok(_) => {}
            Err(e) if !received && peer_gone(&e) => return Err(Error::Closed(Some(e))),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Parse a complete head at the start of `buf` (consuming it), or `None` if more is needed.
/// The head is split off first, so header values share its bytes instead of being copied.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, Error> {
    let Some(end) = head_end(buf) else {
        return Ok(None);
    };
    let head = buf.split_to(end).freeze();
    // Room for a usual answer's headers on the stack; a long list is parsed again.
    match parse_into(&head, method, &mut [httparse::EMPTY_HEADER; FEW_HEADERS])? {
        Some(parsed) => Ok(Some(parsed)),
        None => parse_into(&head, method, &mut vec![httparse::EMPTY_HEADER; MAX_HEADERS])?
            .map(Some)
            .ok_or(Error::Invalid("too many headers")),
    }
}

/// Parse a whole head; `None` if it has more headers than `slots`.
fn parse_into<'h>(head: &'h Bytes, method: &Method, slots: &mut [httparse::Header<'h>]) -> Result<Option<Head>, Error> {
    let mut parsed = httparse::Response::new(slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Ok(None),
        Ok(httparse::Status::Partial) | Err(_) => return Err(Error::Invalid("malformed response head")),
    }
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0)).map_err(|_| Error::Invalid("bad status code"))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Room for what the gateway adds to every answer (its request id).
    let mut headers = crate::http1::header_map(parsed.headers.len() + 1);
    let mut framing = None;
    let mut length: Option<u64> = None;
    let mut close = version == Version::HTTP_10;
    for h in parsed.headers.iter() {
        let name = header_name(h.name.as_bytes()).ok_or(Error::Invalid("bad header name"))?;
        // Looked at as bytes: the headers about this hop are not kept.
        let value = h.value;
        if name == header::TRANSFER_ENCODING {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            framing = Some(if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked(Chunked::Size)
            } else {
                Framing::UntilClose
            });
            continue; // framing is this hop's business (the gateway would strip it)
        } else if name == KEEP_ALIVE {
            continue;
        } else if name == header::CONTENT_LENGTH {
            let n = parse_length(value).ok_or(Error::Invalid("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Invalid("conflicting content-length headers"));
            }
            length = Some(n);
        } else if name == header::CONNECTION {
            let mut only_this_hop = true;
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close &= version != Version::HTTP_10;
                } else {
                    only_this_hop = false;
                }
            }
            // `Connection: keep-alive` or `close` is consumed here; one that names other
            // headers (or an upgrade) stays for the gateway's hop-by-hop stripping.
            if only_this_hop {
                continue;
            }
        }
        headers.append(name, header_value(head, value));
    }
    let framing = if status == StatusCode::SWITCHING_PROTOCOLS {
        Framing::Upgraded
    } else if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Length(0)
    } else {
        framing.unwrap_or(match length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        })
    };
    Ok(Some((status, version, headers, framing, !close)))
}

/// How the rest of a response body is delimited.
enum Framing {
    /// This many bytes to go.
    Length(u64),
    Chunked(Chunked),
    /// Until the endpoint closes the connection.
    UntilClose,
    /// A 101: the connection now carries another protocol.
    Upgraded,
}

/// Where a chunked body's decoder stands.
enum Chunked {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
    Done,
}

/// One step of chunked decoding over what is buffered.
enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    NeedMore,
    Done,
}

impl Chunked {
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, Error> {
        loop {
            match self {
                Chunked::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        *self = if size == 0 {
                            Chunked::Trailers
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() < 4096 => return Ok(Step::NeedMore),
                    _ => return Err(Error::Invalid("bad chunk size line")),
                },
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = (*left).min(buf.len() as u64);
                    *left -= take;
                    if *left == 0 {
                        *self = Chunked::DataEnd;
                    }
                    return Ok(Step::Data(buf.split_to(take as usize).freeze()));
                }
                Chunked::DataEnd => match &buf[..] {
                    [b'\r', b'\n', ..] => {
                        buf.advance(2);
                        *self = Chunked::Size;
                    }
                    [] | [b'\r'] => return Ok(Step::NeedMore),
                    _ => return Err(Error::Invalid("chunk data not followed by CRLF")),
                },
                Chunked::Trailers => {
                    let mut slots = [httparse::EMPTY_HEADER; 32];
                    match httparse::parse_headers(buf, &mut slots) {
                        Ok(httparse::Status::Complete((used, fields))) => {
                            let mut trailers = HeaderMap::new();
                            for f in fields {
                                if let (Ok(n), Ok(v)) = (
                                    HeaderName::from_bytes(f.name.as_bytes()),
                                    HeaderValue::from_bytes(f.value),
                                ) {
                                    trailers.append(n, v);
                                }
                            }
                            buf.advance(used);
                            *self = Chunked::Done;
                            if !trailers.is_empty() {
                                return Ok(Step::Trailers(trailers));
                            }
                        }
                        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(Step::NeedMore),
                        _ => return Err(Error::Invalid("bad trailers")),
                    }
                }
                Chunked::Done => return Ok(Step::Done),
            }
        }
    }
}

/// A response body read from its connection; the connection goes back to its pool when the
/// body ends cleanly, and is closed if the body is dropped before.
pub struct ResponseBody {
    framing: Framing,
    /// The endpoint keeps the connection open and the whole request went out.
    reusable: bool,
    conn: Option<Box<Conn>>,
    checkin: Option<Checkin>,
}

impl ResponseBody {
    /// Where the connection goes when the body ends.
    pub(super) fn return_to(&mut self, checkin: Checkin) {
        self.checkin = Some(checkin);
    }

    /// After a 101: the connection and any bytes the endpoint sent after the head (the body
    /// is left empty).
    pub fn take_upgraded(&mut self) -> Option<(TcpStream, Bytes)> {
        if !matches!(self.framing, Framing::Upgraded) {
            return None;
        }
        let Conn { stream, read, .. } = *self.conn.take()?;
        Some((stream, read.freeze()))
    }

    /// The body ended: the connection goes home if it can take another request.
    fn end(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.reusable
            && conn.read.is_empty()
            && let Some(checkin) = self.checkin.take()
        {
            checkin.release(conn);
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Ended but not polled to its end (a HEAD's answer, a body read by length).
        if matches!(self.framing, Framing::Length(0) | Framing::Chunked(Chunked::Done)) {
            self.end();
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let buf = &mut conn.read;
            match &mut this.framing {
                // The connection stays for `into_upgraded` (or closes with the body).
                Framing::Upgraded => return Poll::Ready(None),
                Framing::Length(0) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Framing::Length(left) if !buf.is_empty() => {
                    let take = (*left).min(buf.len() as u64);
                    *left -= take;
                    let data = buf.split_to(take as usize).freeze();
                    if *left == 0 {
                        this.end();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::UntilClose if !buf.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(buf.split().freeze()))));
                }
                Framing::Chunked(state) => match state.step(buf) {
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::Trailers(t)) => return Poll::Ready(Some(Ok(Frame::trailers(t)))),
                    Ok(Step::Done) => {
                        this.end();
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => {}
                },
                Framing::Length(_) | Framing::UntilClose => {}
            }
            // Nothing buffered to hand out: read more.
            let conn = this.conn.as_mut().expect("checked above");
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.framing, Framing::UntilClose) => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::Invalid("connection closed inside the body"))));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.framing {
            Framing::Length(0) | Framing::Upgraded | Framing::Chunked(Chunked::Done) => true,
            _ => self.conn.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Upgraded => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::Request;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::upstream::{Received, Upstream};

    fn head_of(method: Method, raw: &str) -> Result<Option<Head>, Error> {
        let mut buf = BytesMut::from(raw);
        parse_head(&mut buf, &method)
    }

    fn framing(head: &Head) -> String {
        match &head.3 {
            Framing::Length(n) => format!("length {n}"),
            Framing::Chunked(_) => "chunked".into(),
            Framing::UntilClose => "until close".into(),
            Framing::Upgraded => "upgraded".into(),
        }
    }

    #[test]
    fn a_head_is_incomplete_until_its_last_byte() {
        let raw = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\n";
        for cut in 0..raw.len() {
            assert!(head_of(Method::GET, &raw[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let head = head_of(Method::GET, raw).unwrap().unwrap();
        assert_eq!(
            (head.0, head.1, framing(&head), head.4),
            (StatusCode::OK, Version::HTTP_11, "length 5".into(), true)
        );
        assert_eq!(head.2["x-a"], "1");
    }

    #[test]
    fn framing_and_keep_alive_follow_rfc_9112() {
        let cases = [
            (
                Method::GET,
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 9\r\n\r\n",
                "chunked",
                true,
            ),
            (
                Method::GET,
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
                "until close",
                true,
            ),
            (Method::GET, "HTTP/1.1 200 OK\r\n\r\n", "until close", true),
            (
                Method::HEAD,
                "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
                "length 0",
                true,
            ),
            (Method::GET, "HTTP/1.1 204 No Content\r\n\r\n", "length 0", true),
            (
                Method::GET,
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                "length 0",
                true,
            ),
            (
                Method::GET,
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
                "upgraded",
                true,
            ),
            (
                Method::GET,
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: keep-alive, close\r\n\r\n",
                "length 3",
                false,
            ),
            (
                Method::GET,
                "HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n",
                "length 3",
                false,
            ),
            (
                Method::GET,
                "HTTP/1.0 200 OK\r\ncontent-length: 3\r\nconnection: Keep-Alive\r\n\r\n",
                "length 3",
                true,
            ),
            (
                Method::GET,
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n",
                "length 3",
                true,
            ),
        ];
        for (method, raw, want, keep_alive) in cases {
            let head = head_of(method, raw).unwrap().unwrap();
            assert_eq!((framing(&head).as_str(), head.4), (want, keep_alive), "{raw:?}");
            assert!(
                !head.2.contains_key("transfer-encoding"),
                "framing is consumed: {raw:?}"
            );
        }
        // Connection headers about this hop alone are consumed; others stay for the gateway.
        let head = head_of(
            Method::GET,
            "HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\n",
        );
        assert!(head.unwrap().unwrap().2.is_empty());
        let head = head_of(
            Method::GET,
            "HTTP/1.1 101 Switching\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        );
        assert_eq!(head.unwrap().unwrap().2["connection"], "upgrade");
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -3\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        ] {
            assert!(matches!(head_of(Method::GET, bad), Err(Error::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn chunked_bodies_decode_wherever_the_bytes_split() {
        let raw = b"4\r\nRust\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nx-checksum: 7\r\n\r\n";
        for cut in 0..raw.len() {
            let (mut state, mut buf) = (Chunked::Size, BytesMut::new());
            let (mut data, mut trailers, mut done) = (Vec::new(), None, false);
            for piece in [&raw[..cut], &raw[cut..]] {
                buf.extend_from_slice(piece);
                loop {
                    match state.step(&mut buf).unwrap() {
                        Step::Data(d) => data.extend_from_slice(&d),
                        Step::Trailers(t) => trailers = Some(t),
                        Step::NeedMore => break,
                        Step::Done => {
                            done = true;
                            break;
                        }
                    }
                }
            }
            assert!(done, "cut at {cut}");
            assert_eq!(data, b"Rust0123456789abcdef", "cut at {cut}");
            assert_eq!(trailers.unwrap()["x-checksum"], "7");
        }
        let mut buf = BytesMut::from("4\r\nRustXX");
        let mut state = Chunked::Size;
        assert!(matches!(state.step(&mut buf), Ok(Step::Data(_))));
        assert!(matches!(state.step(&mut buf), Err(Error::Invalid(_))));
    }

    #[test]
    fn request_heads_carry_our_framing_not_the_clients() {
        let head = |method: Method, length: Option<u64>| {
            let (mut parts, ()) = Request::builder()
                .method(method)
                .uri("http://10.0.0.1:80/a?b=1")
                .header("host", "svc")
                .header("content-length", "99")
                .header("transfer-encoding", "gzip")
                .body(())
                .unwrap()
                .into_parts();
            parts.headers.append("x-two", HeaderValue::from_static("1"));
            parts.headers.append("x-two", HeaderValue::from_static("2"));
            let mut out = Vec::new();
            encode_head(&mut out, &parts, length);
            String::from_utf8(out).unwrap()
        };
        let base = "host: svc\r\nx-two: 1\r\nx-two: 2\r\n";
        assert_eq!(head(Method::GET, Some(0)), format!("GET /a?b=1 HTTP/1.1\r\n{base}\r\n"));
        assert_eq!(
            head(Method::POST, Some(0)),
            format!("POST /a?b=1 HTTP/1.1\r\n{base}content-length: 0\r\n\r\n")
        );
        assert_eq!(
            head(Method::PUT, Some(12345)),
            format!("PUT /a?b=1 HTTP/1.1\r\n{base}content-length: 12345\r\n\r\n")
        );
        assert_eq!(
            head(Method::POST, None),
            format!("POST /a?b=1 HTTP/1.1\r\n{base}transfer-encoding: chunked\r\n\r\n")
        );
    }

    /// A cluster of one endpoint at `addr`.
    fn upstream(addr: SocketAddr) -> Arc<Upstream> {
        let text = format!(
            "[[listeners]]\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"u\"\n[clusters.u]\nendpoints = [{{ address = \"{addr}\" }}]\n"
        );
        let config = crate::config::parse(&text, "test.toml").unwrap();
        let registry = crate::telemetry::Registry::new(1, true);
        Upstream::new("u", &config.clusters["u"], 1, &registry, Arc::default())
    }

    /// A raw HTTP/1.1 endpoint: each connection reads request heads and answers each with
    /// `answer(n)` (n counts requests over all connections); `None` closes the connection.
    async fn endpoint(answer: fn(usize) -> Option<&'static str>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (count, requests) = (accepted.clone(), Arc::new(AtomicUsize::new(0)));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let requests = requests.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            match answer(requests.fetch_add(1, Ordering::SeqCst)) {
                                Some(a) => s.write_all(a.as_bytes()).await.unwrap(),
                                None => return,
                            }
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn get(u: &Arc<Upstream>, body: Body) -> Result<(StatusCode, String), crate::upstream::SendError> {
        let req = Request::builder().method("POST").uri("/x").body(body).unwrap();
        let resp = u.clone().send(0, req).await?;
        let status = resp.status();
        let Received::Http1(b) = resp.into_body() else {
            panic!("http/1.1")
        };
        let bytes = b.collect().await.unwrap().to_bytes();
        Ok((status, String::from_utf8(bytes.to_vec()).unwrap()))
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_the_connection_is_reused() {
        let (addr, accepted) = endpoint(|_| {
            Some("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        })
        .await;
        let u = upstream(addr);
        for _ in 0..3 {
            assert_eq!(get(&u, Body::empty()).await.unwrap(), (StatusCode::OK, "hello".into()));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for all three");
    }

    #[tokio::test]
    async fn a_request_the_endpoint_closed_on_goes_again_on_a_new_connection() {
        // The first connection answers once, then closes on the next request unanswered.
        let (addr, accepted) = endpoint(|n| (n != 1).then_some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")).await;
        let u = upstream(addr);
        assert_eq!(get(&u, Body::empty()).await.unwrap().1, "ok");
        assert_eq!(get(&u, Body::empty()).await.unwrap().1, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // With a body it is not sent again: the endpoint may have acted on it.
        let (addr, _) = endpoint(|n| (n != 1).then_some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")).await;
        let u = upstream(addr);
        assert_eq!(get(&u, Body::full("a")).await.unwrap().1, "ok");
        let err = get(&u, Body::full("b")).await.unwrap_err();
        assert!(
            matches!(&err, crate::upstream::SendError::Http1 { source, .. } if source.is_closed()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_sent_stops_the_body_and_the_connection() {
        let (addr, accepted) = endpoint(|_| Some("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")).await;
        let u = upstream(addr);
        use futures_util::StreamExt as _;
        let endless = futures_util::stream::once(async { Ok::<_, BoxError>(Frame::data(Bytes::from("start"))) })
            .chain(futures_util::stream::pending());
        let body = Body::boxed(StreamBody::new(endless).boxed_unsync());
        let (status, _) = get(&u, body).await.unwrap();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(get(&u, Body::empty()).await.unwrap().0, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "the interrupted connection was not reused"
        );
    }
}
