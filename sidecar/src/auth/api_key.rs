//! API keys: read from a header or a query parameter, hashed with SHA-256, and compared in
//! constant time against every configured hash.
//!
//! The config stores only hashes (`printf %s "$KEY" | sha256sum`), so a leaked config leaks no
//! key. A presented key is hashed once and its digest compared with each configured digest by
//! `subtle`'s constant-time equality, all of them every time: how long a check takes does not
//! depend on how much of a digest matched, nor on which entry matched.

use http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::ApiKeys;

/// SHA-256 of a key.
pub fn hash(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// Lowercase hex, as `sha256sum` prints it.
pub fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The index of the entry whose hash is `digest`'s, comparing against all of them in constant
/// time.
pub fn find(keys: &ApiKeys, digest: &[u8; 32]) -> Option<usize> {
    // Index + 1 of the match, 0 for none, selected without a data-dependent branch.
    let mut found = 0u32;
    for (i, k) in keys.keys.iter().enumerate() {
        let hit = k.sha256.ct_eq(digest);
        found = u32::conditional_select(&found, &(i as u32 + 1), hit);
    }
    (found as usize).checked_sub(1)
}

/// The key a request presents: its header, else its query parameter (when one is configured).
pub fn presented<'a>(keys: &ApiKeys, parts: &'a Parts) -> Option<std::borrow::Cow<'a, [u8]>> {
    if let Some(v) = parts.headers.get(&keys.header) {
        return Some(std::borrow::Cow::Borrowed(v.as_bytes()));
    }
    let name = keys.query.as_deref()?;
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| std::borrow::Cow::Owned(percent_decode(v)))
    })
}

/// `%XX` escapes and `+` as a space, as in form-encoded queries; a broken escape stays as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hexpair = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hexpair.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The URI without the query parameter `name` (all its occurrences).
pub fn strip_query_param(uri: &http::Uri, name: &str) -> Option<http::Uri> {
    let query = uri.query()?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .collect();
    let path = uri.path();
    let pq = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;

    fn keys(secrets: &[(&str, &str)]) -> ApiKeys {
        ApiKeys {
            header: http::HeaderName::from_static("x-api-key"),
            query: Some("api_key".into()),
            keys: secrets
                .iter()
                .map(|(tenant, key)| ApiKey {
                    tenant: (*tenant).into(),
                    sha256: hash(key.as_bytes()),
                    scopes: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn hashing_matches_sha256sum() {
        // printf %s test | sha256sum
        assert_eq!(
            hex(&hash(b"test")),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(crate::config::parse_sha256(&hex(&hash(b"k-123"))), Some(hash(b"k-123")));
    }

    #[test]
    fn every_entry_is_compared_and_the_right_one_found() {
        let k = keys(&[("acme", "key-a"), ("globex", "key-g"), ("initech", "key-i")]);
        assert_eq!(find(&k, &hash(b"key-a")), Some(0));
        assert_eq!(find(&k, &hash(b"key-g")), Some(1));
        assert_eq!(find(&k, &hash(b"key-i")), Some(2));
        assert_eq!(find(&k, &hash(b"key-x")), None);
        assert_eq!(find(&k, &hash(b"")), None);
        // One flipped bit in the digest is no match.
        let mut near = hash(b"key-g");
        near[31] ^= 1;
        assert_eq!(find(&k, &near), None);
        assert_eq!(find(&keys(&[]), &hash(b"key-a")), None);
    }

    #[test]
    fn keys_come_from_the_header_first_then_the_query() {
        let k = keys(&[("acme", "key-a")]);
        let req = |uri: &str, header: Option<&str>| {
            let mut b = http::Request::builder().uri(uri);
            if let Some(h) = header {
                b = b.header("x-api-key", h);
            }
            b.body(()).unwrap().into_parts().0
        };
        let p = req("/x?api_key=from-query", Some("from-header"));
        assert_eq!(presented(&k, &p).as_deref(), Some(&b"from-header"[..]));
        let p = req("/x?a=1&api_key=k%2D1%2b+x&b=2", None);
        assert_eq!(presented(&k, &p).as_deref(), Some(&b"k-1+ x"[..]));
        let p = req("/x?api_keys=nope", None);
        assert_eq!(presented(&k, &p), None);
        let p = req("/x?api_key=%zz%4", None);
        assert_eq!(presented(&k, &p).as_deref(), Some(&b"%zz%4"[..]));
        let mut no_query = keys(&[("acme", "key-a")]);
        no_query.query = None;
        assert_eq!(presented(&no_query, &req("/x?api_key=k", None)), None);
    }

    #[test]
    fn the_query_parameter_is_stripped_and_the_rest_kept() {
        let uri: http::Uri = "/a/b?x=1&api_key=s3cret&y=2&api_key=again".parse().unwrap();
        assert_eq!(strip_query_param(&uri, "api_key").unwrap(), "/a/b?x=1&y=2");
        let uri: http::Uri = "/a?api_key=s3cret".parse().unwrap();
        assert_eq!(strip_query_param(&uri, "api_key").unwrap(), "/a");
    }
}
