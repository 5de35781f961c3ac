//! The ids the sidecar writes into headers (request ids, W3C trace context), formatted without
//! `fmt` and stored without an allocation each.
//!
//! Every request gets a request id and a `traceparent`. Each as `Bytes` of its own was an
//! allocation, and the request id a second one when its first clone turned the vector-backed
//! `Bytes` into a shared one. Here they are slices of a per-thread buffer: a clone is a
//! reference count, and a new buffer is allocated once per [`ARENA`] bytes of ids (about 45
//! requests' worth).

use std::cell::RefCell;

use bytes::BytesMut;
use http::HeaderValue;

/// Size of each per-thread buffer ids are carved from. A buffer lives until the last id in it
/// is dropped.
const ARENA: usize = 4096;

thread_local! {
    static BUFFER: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Lower-case hex of each byte, two digits per byte.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    pairs
};

/// Lower-case hex of `bytes` into `out` (twice as long).
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), 2 * bytes.len());
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

/// A new request id: a random (version 4) UUID in its hyphenated form (RFC 9562).
pub fn request_id() -> HeaderValue {
    let mut b = crate::rng::bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // the RFC's variant
    let mut text = [b'-'; 36];
    for (at, bytes) in [(0, 0..4), (9, 4..6), (14, 6..8), (19, 8..10), (24, 10..16)] {
        hex_into(&b[bytes.clone()], &mut text[at..at + 2 * bytes.len()]);
    }
    // SAFETY: hex digits and dashes.
    unsafe { header_value(&text) }
}

/// `bytes` as a header value, stored in this thread's buffer.
///
/// # Safety
///
/// Every byte must be allowed in a header value (HTAB, SP to `~`, 0x80-0xFF); only debug
/// builds check it.
pub unsafe fn header_value(bytes: &[u8]) -> HeaderValue {
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        if buffer.capacity() - buffer.len() < bytes.len() {
            *buffer = BytesMut::with_capacity(ARENA.max(bytes.len()));
        }
        buffer.extend_from_slice(bytes);
        let value = buffer.split().freeze();
        // SAFETY: the caller's promise.
        unsafe { HeaderValue::from_maybe_shared_unchecked(value) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = vec![0; 512];
        hex_into(&bytes, &mut out);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        let ids: Vec<HeaderValue> = (0..2000).map(|_| request_id()).collect();
        for id in &ids {
            let text = id.to_str().unwrap();
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{text}"
            );
            assert!(
                text.bytes()
                    .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{text}"
            );
            assert!(groups[2].starts_with('4'), "version: {text}");
            assert!(groups[3].starts_with(['8', '9', 'a', 'b']), "variant: {text}");
        }
        // Many ids span several buffers; each keeps its own bytes.
        let distinct: std::collections::HashSet<&[u8]> = ids.iter().map(HeaderValue::as_bytes).collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
