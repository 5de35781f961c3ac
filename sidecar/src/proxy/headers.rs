//! Header hygiene between hops (RFC 9110 §7.6.1) and the forwarding headers.

use std::net::SocketAddr;

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Headers that describe one connection, not the message, and never cross a proxy (plus any
/// `Proxy-*` and whatever `Connection` lists).
///
/// `Trailer` is deliberately absent: it names the trailer fields that end *this message*
/// (end to end, RFC 9110 §6.6.2; RFC 2616's hop-by-hop "Trailers" meant TE), and hyper only
/// emits trailers that it lists, so stripping it would silently drop forwarded trailers.
static HOP_BY_HOP: [&HeaderName; 5] = [
    &header::CONNECTION,
    &header::TE,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &KEEP_ALIVE,
];

/// Whether the sidecar strips `name` from every message: one of the fixed hop-by-hop headers or
/// a `Proxy-*` (what `Connection` lists is per message).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name) || is_proxy(name)
}

/// `Proxy-*`: about the connection to a proxy (`Proxy-Authorization`, `Proxy-Connection`), so
/// hop-by-hop too (header names are lower case here).
fn is_proxy(name: &HeaderName) -> bool {
    name.as_str().starts_with("proxy-")
}

/// Which headers the gateway looks up by name a request carries, noted in one pass over its
/// names. Most requests carry none of them, and a lookup hashes the name (a custom one byte by
/// byte): knowing they are absent spares the lookups, and lets the forwarding headers be
/// appended without looking first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Present {
    pub request_id: bool,
    pub traceparent: bool,
    pub forwarded_for: bool,
    pub forwarded_proto: bool,
    pub forwarded_host: bool,
    pub expect: bool,
    pub upgrade: bool,
    /// Any hop-by-hop header (`Upgrade` included) or `Proxy-*`.
    pub hop_by_hop: bool,
}

impl Present {
    pub fn scan(headers: &HeaderMap) -> Self {
        let mut p = Present::default();
        for name in headers.keys() {
            if *name == X_REQUEST_ID {
                p.request_id = true;
            } else if *name == crate::telemetry::tracing::TRACEPARENT {
                p.traceparent = true;
            } else if *name == X_FORWARDED_FOR {
                p.forwarded_for = true;
            } else if *name == X_FORWARDED_PROTO {
                p.forwarded_proto = true;
            } else if *name == X_FORWARDED_HOST {
                p.forwarded_host = true;
            } else if *name == header::EXPECT {
                p.expect = true;
            } else if is_hop_by_hop(name) {
                p.hop_by_hop = true;
                p.upgrade |= *name == header::UPGRADE;
            }
        }
        p
    }
}

/// Remove hop-by-hop headers: the fixed set, whatever `Connection` lists, and `Proxy-*`.
/// `keep_upgrade` keeps `Connection: upgrade` and `Upgrade` for a WebSocket-style handshake;
/// `TE: trailers` survives because it asks the next hop to forward trailers, which we do.
///
/// This runs twice per request, so the common cases cost one scan of the names: nothing to do,
/// or a lone `Connection: keep-alive` to drop.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut present = [false; HOP_BY_HOP.len()];
    let mut proxy = false;
    for name in headers.keys() {
        match HOP_BY_HOP.iter().position(|h| *h == name) {
            Some(i) => present[i] = true,
            None => proxy |= is_proxy(name),
        }
    }
    if !proxy && !present.contains(&true) {
        return;
    }
    let [connection, te, ..] = present;
    let te_trailers = te && headers.get_all(&header::TE).iter().any(|v| has_token(v, b"trailers"));
    // Names `Connection` lists beyond the fixed set (rare): collected, then removed.
    let listed: Vec<String> = if !connection {
        Vec::new()
    } else {
        headers
            .get_all(&header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(b"close"))
            .filter(|t| !HOP_BY_HOP.iter().any(|h| t.eq_ignore_ascii_case(h.as_str().as_bytes())))
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect()
    };
    for name in &listed {
        headers.remove(name.as_str());
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        if !(keep_upgrade && **name == header::UPGRADE) {
            headers.remove(*name);
        }
    }
    while proxy {
        match headers.keys().find(|k| is_proxy(k)).cloned() {
            Some(name) => drop(headers.remove(name)),
            None => proxy = false,
        }
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn has_token(value: &HeaderValue, token: &[u8]) -> bool {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether a request asks to switch protocols (HTTP/1.1 `Connection: upgrade` + `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

/// The downstream client of a connection, with its address already rendered as a header
/// value (once per connection, not per request).
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    ip: HeaderValue,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        let ip = HeaderValue::try_from(addr.ip().to_string()).expect("an IP is a valid header value");
        Client { addr, ip }
    }
}

/// Set `name` to `value`: in place when it is there once, else inserted (replacing any
/// others). `HeaderMap::insert` reserves room before it looks, so even a replacement would
/// grow a full map.
pub fn replace(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    let mut present = headers.get_all(&name).iter();
    if present.next().is_some() && present.next().is_none() {
        *headers.get_mut(&name).expect("present once") = value;
    } else {
        headers.insert(name, value);
    }
}

/// Append the client to `X-Forwarded-For`; set `-Proto`, and `-Host` to `host` when given
/// (the route rewrites `Host`), unless an earlier proxy did. `present` says which of them the
/// request carries: an absent one is appended without a lookup; a present one is found once by
/// `entry`.
pub fn set_forwarded(headers: &mut HeaderMap, client: &Client, host: Option<&HeaderValue>, present: Present) {
    if !present.forwarded_for {
        headers.append(X_FORWARDED_FOR.clone(), client.ip.clone());
    } else {
        match headers.entry(X_FORWARDED_FOR.clone()) {
            Entry::Occupied(mut e) => {
                let appended = e
                    .get()
                    .to_str()
                    .ok()
                    .map(|prev| format!("{prev}, {}", client.addr.ip()))
                    .and_then(|v| HeaderValue::try_from(v).ok());
                e.insert(appended.unwrap_or_else(|| client.ip.clone()));
            }
            Entry::Vacant(e) => {
                e.insert(client.ip.clone());
            }
        }
    }
    if !present.forwarded_proto {
        headers.append(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if let (Some(host), false) = (host, present.forwarded_host) {
        headers.append(X_FORWARDED_HOST.clone(), host.clone());
    }
}

/// The request's id: the client's `x-request-id` if it sent a sane one, else a new UUID.
pub fn request_id(headers: &HeaderMap, present: Present) -> HeaderValue {
    match present.request_id.then(|| headers.get(&X_REQUEST_ID)).flatten() {
        Some(v) if !v.is_empty() && v.len() <= 128 => v.clone(),
        _ => crate::ids::request_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_replacement_keeps_a_full_map_as_it_is() {
        let mut h = HeaderMap::with_capacity(6);
        for (i, name) in ["host", "a", "b", "c", "d", "e"].into_iter().enumerate() {
            h.insert(HeaderName::from_static(name), HeaderValue::from(i));
        }
        assert_eq!((h.len(), h.capacity()), (6, 6));
        replace(&mut h, header::HOST, HeaderValue::from_static("upstream"));
        assert_eq!((h.len(), h.capacity()), (6, 6), "no growth to replace a value");
        assert_eq!(h["host"], "upstream");
        // Several values become the one.
        let mut h = map(&[("host", "a"), ("host", "b")]);
        replace(&mut h, header::HOST, HeaderValue::from_static("c"));
        assert_eq!(h.get_all("host").iter().collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "gzip"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-keep"]);
        let mut with_trailer = map(&[("trailer", "x-checksum")]);
        strip_hop_by_hop(&mut with_trailer, false);
        assert_eq!(with_trailer["trailer"], "x-checksum", "Trailer is end to end");
    }

    #[test]
    fn te_trailers_and_upgrades_survive_when_meant_to() {
        let mut h = map(&[
            ("te", "trailers, gzip"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn one_pass_notes_the_headers_looked_up_by_name() {
        assert_eq!(
            Present::scan(&map(&[("host", "a"), ("accept", "*/*")])),
            Present::default()
        );
        let p = Present::scan(&map(&[
            ("x-request-id", "r"),
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "h"),
            ("expect", "100-continue"),
            ("upgrade", "websocket"),
        ]));
        let all = Present {
            request_id: true,
            traceparent: true,
            forwarded_for: true,
            forwarded_proto: true,
            forwarded_host: true,
            expect: true,
            upgrade: true,
            hop_by_hop: true,
        };
        assert_eq!(p, all);
        for hop in [
            "connection",
            "te",
            "transfer-encoding",
            "keep-alive",
            "proxy-authorization",
        ] {
            let p = Present::scan(&map(&[(hop, "x")]));
            assert!(p.hop_by_hop && !p.upgrade, "{hop}");
        }
    }

    #[test]
    fn forwarded_headers_append_and_keep() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-proto", "https")]);
        let client = Client::new("127.0.0.1:5000".parse().unwrap());
        let present = Present::scan(&h);
        set_forwarded(
            &mut h,
            &client,
            Some(&HeaderValue::from_static("shop.example")),
            present,
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        let mut fresh = HeaderMap::new();
        set_forwarded(&mut fresh, &client, None, Present::default());
        assert_eq!(fresh["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "shop.example");
    }

    #[test]
    fn request_ids_are_kept_or_generated() {
        let with_id = map(&[("x-request-id", "abc")]);
        assert_eq!(request_id(&with_id, Present::scan(&with_id)), "abc");
        let generated = request_id(&HeaderMap::new(), Present::default());
        assert_eq!(generated.len(), 36);
        assert_ne!(generated, request_id(&HeaderMap::new(), Present::default()));
    }
}
