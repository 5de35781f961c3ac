//! HTTP/1.1 wire pieces shared by the sidecar's own client ([`crate::upstream::h1`]) and
//! server ([`crate::server::h1`]): where a head ends, header lines, and writing a body with
//! Content-Length or chunked framing (RFC 9112 §6-7).

use std::cell::RefCell;
use std::io::{self, Write as _};
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::body::{Body, BoxError};

/// Body data up to this size is copied next to what is already buffered (one write); larger
/// goes out on its own.
const COPY_UP_TO: usize = 16 * 1024;

/// Where a head ends (just past its empty line), if `buf` holds a whole one.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match &buf[i + 1..] {
        [b'\n', ..] => Some(i + 2),
        [b'\r', b'\n', ..] => Some(i + 3),
        _ => None,
    })
}

/// Make room to read into `buf`: `space` bytes once fewer than `least` are left. A head split
/// off the buffer shares its allocation while the request lives, so asking for a full
/// buffer's room before every read would allocate a new buffer per message; asking only
/// when the room runs low finds the old messages gone and reuses the space in place.
pub fn make_room(buf: &mut BytesMut, least: usize, space: usize) {
    if buf.capacity() - buf.len() < least {
        buf.reserve(space);
    }
}

thread_local! {
    /// Header maps of answered messages, cleared, for the next parsed ones on this thread.
    static SPARE_MAPS: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// Maps kept per thread: enough for every request in flight on a busy worker to hand one
/// back; a map that grew past `MAP_KEPT_UP_TO` entries (a rare long head) is not kept.
const SPARE_MAPS_KEPT: usize = 256;
const MAP_KEPT_UP_TO: usize = 64;

/// A header map with room for `n` entries, reused from an answered message when there is one:
/// a new map is two allocations, and a request makes two maps (its own and its answer's).
pub fn header_map(n: usize) -> HeaderMap {
    match SPARE_MAPS.with(|s| s.borrow_mut().pop()) {
        Some(mut map) => {
            map.reserve(n);
            map
        }
        None => HeaderMap::with_capacity(n),
    }
}

/// Hand a message's header map back for [`header_map`] once the message is on the wire.
pub fn recycle(mut map: HeaderMap) {
    if map.capacity() > MAP_KEPT_UP_TO {
        return;
    }
    map.clear();
    SPARE_MAPS.with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < SPARE_MAPS_KEPT {
            spare.push(map);
        }
    });
}

/// Names up to this long are remembered by [`header_name`] (longer ones are rare).
const NAME_CACHED_UP_TO: usize = 32;
/// Slots of [`header_name`]'s per-thread cache.
const NAME_SLOTS: usize = 64;

/// A recent header name, as spelled on the wire.
struct NameSlot {
    len: u8,
    raw: [u8; NAME_CACHED_UP_TO],
    name: HeaderName,
}

thread_local! {
    static NAMES: RefCell<[Option<NameSlot>; NAME_SLOTS]> = const { RefCell::new([const { None }; NAME_SLOTS]) };
}

/// A header name parsed off the wire, `None` if it is not one. Peers send the same few names
/// in the same spelling message after message, and `HeaderName::from_bytes` lower-cases and
/// looks each one up again (about 250 instructions a name, callgrind): a name seen on this
/// thread is cloned from a small cache keyed by its exact spelling instead.
pub fn header_name(raw: &[u8]) -> Option<HeaderName> {
    let n = raw.len();
    if n == 0 || n > NAME_CACHED_UP_TO {
        return HeaderName::from_bytes(raw).ok();
    }
    // The first and last four bytes (overlapping in a short name) and the length pick the
    // slot; a collision only costs a miss.
    let word = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
    let ends = if n >= 4 {
        u64::from(word(0)) << 32 | u64::from(word(n - 4))
    } else {
        raw.iter().fold(0, |h, &b| h << 8 | u64::from(b))
    };
    let slot = ((ends ^ n as u64).wrapping_mul(0x517c_c1b7_2722_0a95) >> (64 - NAME_SLOTS.ilog2())) as usize;
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(hit) = &names[slot]
            && &hit.raw[..usize::from(hit.len)] == raw
        {
            return Some(hit.name.clone());
        }
        let name = HeaderName::from_bytes(raw).ok()?;
        let mut copy = [0; NAME_CACHED_UP_TO];
        copy[..n].copy_from_slice(raw);
        names[slot] = Some(NameSlot {
            len: n as u8,
            raw: copy,
            name: name.clone(),
        });
        Some(name)
    })
}

/// A header value httparse accepted, sharing the bytes of the head it was parsed from.
pub fn header_value(head: &Bytes, value: &[u8]) -> HeaderValue {
    // SAFETY: httparse accepts a value only if every byte is HTAB, SP to `~`, or obs-text
    // (0x80-0xFF): exactly the bytes `HeaderValue` allows, so its check would repeat
    // httparse's (as hyper relies on too). Debug builds of `http` check it anyway.
    unsafe { HeaderValue::from_maybe_shared_unchecked(head.slice_ref(value)) }
}

/// One `name: value` line of a head or trailer section.
pub fn put_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A Content-Length value, if it is one (RFC 9110: digits only; surrounding whitespace is
/// allowed, a sign is not).
pub fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))?
    })
}

/// A `content-length` line.
pub fn put_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa(n, &mut [0; 20]));
    out.extend_from_slice(b"\r\n");
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Why writing a body stopped.
#[derive(Debug)]
pub enum WriteError {
    /// The body failed (its source broke off, or it went over a limit).
    Body(BoxError),
    /// The peer's connection failed.
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// Write what `out` holds (a head), then the body, chunked or as is; the number of body bytes
/// written. Small frames are gathered with what is buffered, so a head and a short body leave
/// in one write. Trailers go out only in chunked framing.
pub async fn write_body(
    wr: &mut (impl AsyncWrite + Unpin),
    out: &mut Vec<u8>,
    body: Body,
    chunked: bool,
) -> Result<u64, WriteError> {
    let mut body = std::pin::pin!(body);
    let mut written = 0;
    let mut trailers_sent = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(WriteError::Body)?;
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) => {
                written += data.remaining() as u64;
                if chunked {
                    write!(out, "{:x}\r\n", data.len()).expect("writing to a Vec");
                }
                if data.len() <= COPY_UP_TO {
                    out.extend_from_slice(&data);
                } else {
                    wr.write_all(out).await?;
                    out.clear();
                    wr.write_all(&data).await?;
                }
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
            }
            Err(frame) => {
                if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &trailers {
                        put_field(out, name, value);
                    }
                    out.extend_from_slice(b"\r\n");
                    trailers_sent = true;
                }
            }
        }
        // Out with it before waiting for the next frame, which may be slow to come.
        if !out.is_empty() && !body.is_end_stream() {
            wr.write_all(out).await?;
            out.clear();
        }
    }
    if chunked && !trailers_sent {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    Ok(written)
}

/// A `date` line for now (RFC 9110 §6.6.1), formatted once a second per thread.
pub fn put_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = crate::clock::unix_secs();
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != now || cached.1.is_empty() {
            *cached = (now, httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now)));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(cached.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_after_its_empty_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nhost: a\r\n\r\nrest"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nhost: a\n\nrest"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nhost: a\r\n"), None);
    }

    #[test]
    fn header_names_come_from_the_cache_as_from_bytes_would_make_them() {
        for raw in [
            &b"Content-Type"[..],
            b"content-type",
            b"X-Request-Id",
            b"x-a",
            b"Server",
            b"Content-Type",
        ] {
            for _ in 0..2 {
                assert_eq!(header_name(raw), HeaderName::from_bytes(raw).ok(), "{raw:?}");
            }
        }
        let long = [b'a'; NAME_CACHED_UP_TO + 1];
        assert_eq!(header_name(&long).unwrap().as_str().len(), long.len());
        for bad in [&b""[..], b"bad name", b"a:b"] {
            assert_eq!(header_name(bad), None, "{bad:?}");
            assert_eq!(header_name(bad), None, "{bad:?}");
        }
        // Many names through few slots: every answer still the right name.
        for i in 0..500 {
            let raw = format!("X-Custom-{i}");
            assert_eq!(header_name(raw.as_bytes()).unwrap(), raw.to_ascii_lowercase().as_str());
        }
    }

    #[test]
    fn content_lengths_are_digits_only() {
        assert_eq!(parse_length(b"64"), Some(64));
        assert_eq!(parse_length(b" 0 "), Some(0));
        assert_eq!(parse_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b" ", b"+5", b"-1", b"1 2", b"0x10", b"18446744073709551616"] {
            assert_eq!(parse_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn bodies_go_out_chunked_or_as_they_are() {
        let mut wire = Vec::new();
        let mut out = b"HEAD\r\n".to_vec();
        let n = write_body(&mut wire, &mut out, Body::full("hello"), true)
            .await
            .unwrap();
        assert_eq!((n, &wire[..]), (5, &b"HEAD\r\n5\r\nhello\r\n0\r\n\r\n"[..]));
        wire.clear();
        let n = write_body(&mut wire, &mut out, Body::full("hello"), false)
            .await
            .unwrap();
        assert_eq!((n, &wire[..]), (5, &b"hello"[..]));
    }

    #[test]
    fn the_date_line_is_an_http_date() {
        let mut out = Vec::new();
        put_date(&mut out);
        let line = String::from_utf8(out).unwrap();
        let value = line.strip_prefix("date: ").unwrap().trim_end();
        assert!(httpdate::parse_http_date(value).is_ok(), "{line}");
    }
}
