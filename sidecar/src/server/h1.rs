//! HTTP/1.1 from clients, served on the connection's own task.
//!
//! hyper's server dispatcher, parser and encoder were about a quarter of the sidecar's
//! instructions per request (callgrind, bench/RESULTS.md "What limits the sidecar"). Almost
//! all traffic is simple: a head, no body or a short one with a Content-Length, an answer.
//! This path serves exactly that: it reads a head, parses it with httparse (header values
//! share the head's bytes), reads a short body whole, hands the request to the gateway, and
//! writes the answer with its own framing (RFC 9112 §6: Content-Length when known, chunked
//! otherwise, close-delimited for HTTP/1.0; none for HEAD, 1xx, 204 and 304), head and a
//! short body in one write. Keep-alive follows RFC 9112 §9.3; pipelined requests are
//! answered in order.
//!
//! Everything else is left to hyper, for the rest of the connection: a head that does not
//! parse or is too large (hyper answers 400/431), h2c's preface, a chunked or long body,
//! `Expect`, `Upgrade` and CONNECT. [`serve`] then returns the bytes read so far, and the
//! caller gives hyper the connection with those bytes in front (`Tracked::unread`).
//!
//! While the gateway works on a request, the connection is watched: a client that closes it
//! cancels the request, as hyper does.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as HttpBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::activity::{Activity, Tracked};
use crate::body::Body;
use crate::config::Listener;
use crate::http1::{
    WriteError, head_end, header_map, header_name, header_value, make_room, parse_length, put_date, put_field,
    put_length, recycle, write_body,
};
use crate::proxy::headers::Client;
use crate::proxy::{Hangup, HungUp};
use crate::sidecar::Shared;
use crate::worker::bunched;

/// Headers parsed here; a request with more goes to hyper (which allows 100).
const MAX_HEADERS: usize = 32;
/// Longest body read whole before the request is handled; longer ones go to hyper, which
/// streams them.
const MAX_BODY: u64 = 16 * 1024;
/// Read buffer space made available when less than `MIN_READ_SPACE` is left.
const READ_SPACE: usize = 8 * 1024;
const MIN_READ_SPACE: usize = 1024;

type Io = Tracked<TcpStream>;

/// How a connection served here ended.
pub enum Ended {
    /// Closed (or to be closed by dropping it).
    Closed,
    /// Left to hyper, with the bytes read from it so far.
    HandOver(Bytes),
}

/// What a connection is served with.
pub struct Context<'a> {
    pub shared: &'a Shared,
    pub client: &'a Client,
    pub activity: &'a Arc<Activity>,
    pub cfg: &'a Listener,
    pub shutdown: &'a mut watch::Receiver<bool>,
}

/// Serve requests on `io` until it closes, times out, drains, or needs hyper.
pub async fn serve(io: &mut Io, cx: Context<'_>) -> Ended {
    let mut read = BytesMut::with_capacity(READ_SPACE);
    let mut out = Vec::with_capacity(1024);
    let expired = cx.activity.expired(cx.cfg.header_read_timeout, cx.cfg.idle_timeout);
    tokio::pin!(expired);
    loop {
        // A whole head, unless the connection ends first.
        let end = loop {
            if let Some(end) = head_end(&read) {
                break end;
            }
            if read.len() > cx.cfg.max_request_header_size {
                return Ended::HandOver(read.freeze());
            }
            make_room(&mut read, MIN_READ_SPACE, READ_SPACE);
            let idle = read.is_empty();
            tokio::select! {
                biased;
                r = io.read_buf(&mut read) => match r {
                    Ok(n) if n > 0 => {}
                    _ => return Ended::Closed,
                },
                // The header-read timeout once a head has begun, the idle timeout before.
                _ = &mut expired => return Ended::Closed,
                _ = cx.shutdown.wait_for(|s| *s), if idle => return Ended::Closed,
            }
        };
        let head = read.split_to(end).freeze();
        let Some(Parsed {
            mut req,
            length,
            keep_alive,
        }) = parse(&head, cx.cfg)
        else {
            let mut all = BytesMut::from(&head[..]);
            all.extend_from_slice(&read);
            return Ended::HandOver(all.freeze());
        };
        let in_flight = cx.activity.request_started();
        if length > 0 {
            while (read.len() as u64) < length {
                make_room(&mut read, MIN_READ_SPACE, READ_SPACE);
                if !matches!(io.read_buf(&mut read).await, Ok(n) if n > 0) {
                    return Ended::Closed;
                }
            }
            *req.body_mut() = Body::full(read.split_to(length as usize).freeze());
        }
        let (method, version) = (req.method().clone(), req.version());
        let gateway = cx.shared.gateway();
        let answered = tokio::select! {
            biased;
            answer = gateway.handle(req, cx.client) => answer,
            () = client_gone(io, &mut read, cx.cfg.max_request_header_size) => return Ended::Closed,
        };
        let resp = match answered {
            Ok(resp) => resp,
            Err(HungUp(Hangup::Reset)) => {
                // SO_LINGER 0: the close that follows sends a TCP reset.
                let _ = socket2::SockRef::from(io.get_ref()).set_linger(Some(std::time::Duration::ZERO));
                return Ended::Closed;
            }
            Err(HungUp(Hangup::Close)) => return Ended::Closed,
        };
        let keep_alive = keep_alive && !*cx.shutdown.borrow();
        if !respond(io, &mut out, resp, &method, version, keep_alive).await {
            return Ended::Closed;
        }
        drop(in_flight);
        if !read.is_empty() {
            cx.activity.head_begun(); // a pipelined head: the header-read timeout applies to it too
        }
    }
}

/// A request ready for the gateway (its body, if any, still to be read).
struct Parsed {
    req: Request<Body>,
    length: u64,
    keep_alive: bool,
}

/// Parse a whole head; `None` for a request left to hyper.
fn parse(head: &Bytes, cfg: &Listener) -> Option<Parsed> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    if !matches!(parsed.parse(head), Ok(httparse::Status::Complete(_))) || head.len() > cfg.max_request_header_size {
        return None;
    }
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    let uri = Uri::from_maybe_shared(head.slice_ref(parsed.path?.as_bytes())).ok()?;
    let version = match parsed.version? {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Room for what the gateway adds to every request (`gateway::ADDED_REQUEST_HEADERS`); a
    // route's own added headers are reserved by the gateway.
    let mut headers = header_map(parsed.headers.len() + crate::gateway::ADDED_REQUEST_HEADERS);
    let mut length = None;
    let mut keep_alive = version == Version::HTTP_11;
    for h in parsed.headers.iter() {
        let name = header_name(h.name.as_bytes())?;
        let value = header_value(head, h.value);
        if name == header::CONTENT_LENGTH {
            let n = parse_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if name == header::CONNECTION {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive |= version == Version::HTTP_10;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return None;
                }
            }
        } else if name == header::TRANSFER_ENCODING || name == header::EXPECT || name == header::UPGRADE {
            return None;
        }
        headers.append(name, value);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY {
        return None;
    }
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    Some(Parsed {
        req,
        length,
        keep_alive,
    })
}

/// Resolves when the client closes the connection (or it fails). Bytes it sends meanwhile (a
/// pipelined request) are kept for later, up to `keep` bytes.
async fn client_gone(io: &mut Io, read: &mut BytesMut, keep: usize) {
    loop {
        if read.len() > keep {
            return std::future::pending().await;
        }
        make_room(read, MIN_READ_SPACE, READ_SPACE);
        if !matches!(io.read_buf(read).await, Ok(n) if n > 0) {
            return;
        }
    }
}

/// How the answer's body is delimited on the wire.
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, a length not known up front).
    Close,
}

/// Write the answer; whether the connection can take another request.
async fn respond(
    io: &mut Io,
    out: &mut Vec<u8>,
    resp: Response<Body>,
    method: &Method,
    version: Version,
    mut keep_alive: bool,
) -> bool {
    let (mut parts, body) = resp.into_parts();
    let status = parts.status;
    out.clear();
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut length = None;
    let (mut has_date, mut says_close) = (false, false);
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING {
            continue; // the framing is this hop's
        } else if name == header::CONTENT_LENGTH {
            if status.is_informational() || status == StatusCode::NO_CONTENT {
                continue;
            }
            length = parse_length(value.as_bytes());
        } else if name == header::CONNECTION {
            says_close |= value.as_bytes().eq_ignore_ascii_case(b"close");
        } else if name == header::DATE {
            has_date = true;
        }
        put_field(out, name, value);
    }
    keep_alive &= !says_close;
    recycle(std::mem::take(&mut parts.headers));
    let framing = if no_body {
        // A HEAD's answer tells the length a GET would get, when it is known.
        if *method == Method::HEAD
            && length.is_none()
            && let Some(n) = body.size_hint().exact().filter(|&n| n > 0)
        {
            put_length(out, n);
        }
        Framing::None
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if let Some(n) = if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    } {
        put_length(out, n);
        Framing::Length(n)
    } else if version == Version::HTTP_11 {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::Close
    };
    if !keep_alive && !says_close && version == Version::HTTP_11 {
        out.extend_from_slice(b"connection: close\r\n");
    } else if keep_alive && version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !has_date {
        put_date(out);
    }
    out.extend_from_slice(b"\r\n");
    let written = match framing {
        Framing::None => {
            drop(body);
            let sent = bunched(io).write_all(out).await;
            return sent.is_ok() && keep_alive;
        }
        Framing::Chunked => write_body(&mut bunched(io), out, body, true).await,
        Framing::Length(_) | Framing::Close => write_body(&mut bunched(io), out, body, false).await,
    };
    match (written, framing) {
        // A body that broke off, or did not match its length: only closing tells the client.
        (Ok(n), Framing::Length(declared)) => keep_alive && n == declared,
        (Ok(_), _) => keep_alive,
        (Err(WriteError::Body(e)), _) => {
            tracing::debug!(error = %e, "response body failed; closing the connection");
            false
        }
        (Err(WriteError::Io(_)), _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn listener() -> Listener {
        Listener {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_connections: 10,
            max_request_header_size: 1024,
            header_read_timeout: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
        }
    }

    fn parsed(raw: &str) -> Option<Parsed> {
        parse(&Bytes::copy_from_slice(raw.as_bytes()), &listener())
    }

    #[test]
    fn simple_requests_are_served_here() {
        let p = parsed("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n").unwrap();
        assert_eq!(p.req.method(), Method::GET);
        assert_eq!(p.req.uri(), "/a?b=1");
        assert_eq!(p.req.headers()["host"], "x");
        assert_eq!(p.req.headers().get_all("x-two").iter().count(), 2);
        assert!(p.keep_alive);
        assert_eq!(p.length, 0);
        let p = parsed("POST / HTTP/1.1\r\ncontent-length: 5\r\nconnection: close\r\n\r\n").unwrap();
        assert_eq!((p.length, p.keep_alive), (5, false));
        let p = parsed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(p.keep_alive);
        assert!(!parsed("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
    }

    #[test]
    fn the_rest_is_left_to_hyper() {
        for raw in [
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nbad header\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 99999\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 1\r\nexpect: 100-continue\r\n\r\n",
            "GET /ws HTTP/1.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n",
            "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
        ] {
            assert!(parsed(raw).is_none(), "{raw:?}");
        }
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("x-{i}: y\r\n")).collect();
        assert!(parsed(&format!("GET / HTTP/1.1\r\n{many}\r\n")).is_none());
    }

    /// What `respond` puts on the wire (the date line left out), and whether it keeps the
    /// connection.
    async fn wire(resp: Response<Body>, method: Method, version: Version) -> (String, bool) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut client = client.unwrap();
        let mut io = Tracked::new(server.unwrap().0, Activity::new());
        let keep = respond(&mut io, &mut Vec::new(), resp, &method, version, true).await;
        drop(io);
        let mut wire = String::new();
        client.read_to_string(&mut wire).await.unwrap();
        let date = wire.find("date: ").expect("a date line");
        let line = wire[date..].find("\r\n").unwrap() + 2;
        wire.replace_range(date..date + line, "");
        (wire, keep)
    }

    fn with_status(status: StatusCode, body: Body) -> Response<Body> {
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        resp
    }

    #[tokio::test]
    async fn answers_are_framed_by_what_is_known_of_their_body() {
        const HTTP_10: Version = Version::HTTP_10;
        const HTTP_11: Version = Version::HTTP_11;
        let ok = |body| Response::new(body);
        assert_eq!(
            wire(ok(Body::full("hi")), Method::GET, HTTP_11).await,
            ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi".into(), true)
        );
        assert_eq!(
            wire(ok(Body::full("hi")), Method::HEAD, HTTP_11).await,
            ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".into(), true)
        );
        assert_eq!(
            wire(with_status(StatusCode::NO_CONTENT, Body::empty()), Method::GET, HTTP_11).await,
            ("HTTP/1.1 204 No Content\r\n\r\n".into(), true)
        );
        assert_eq!(
            wire(ok(Body::empty()), Method::GET, HTTP_10).await,
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n".into(),
                true
            )
        );
        let mut closing = ok(Body::full("x"));
        closing
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert_eq!(
            wire(closing, Method::GET, HTTP_11).await,
            (
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nx".into(),
                false
            )
        );
        // A length not known up front: chunked, or until the close for HTTP/1.0.
        let streamed = || {
            let chunks = futures_util::stream::iter(["ab", "c"].map(|c| Ok(http_body::Frame::data(Bytes::from(c)))));
            Body::boxed(http_body_util::BodyExt::boxed_unsync(http_body_util::StreamBody::new(
                chunks,
            )))
        };
        assert_eq!(
            wire(ok(streamed()), Method::GET, HTTP_11).await,
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n".into(),
                true
            )
        );
        assert_eq!(
            wire(ok(streamed()), Method::GET, HTTP_10).await,
            ("HTTP/1.0 200 OK\r\n\r\nabc".into(), false)
        );
        // A declared length the body does not fill: the connection closes.
        let mut short = with_status(StatusCode::BAD_GATEWAY, Body::full("x"));
        short
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert_eq!(
            wire(short, Method::GET, HTTP_11).await,
            ("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 3\r\n\r\nx".into(), false)
        );
    }
}
