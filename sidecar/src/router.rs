//! Route matching: the first route, in declared order, whose every condition holds.

use http::request::Parts;
use http::{HeaderMap, Method, Uri};

use crate::config::{HeaderMatch, HeaderRule, HostMatch, PathMatch, RouteMatch};

/// The parts of a request a route can look at.
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

impl<'a> From<&'a Parts> for RequestView<'a> {
    fn from(p: &'a Parts) -> Self {
        RequestView {
            method: &p.method,
            uri: &p.uri,
            headers: &p.headers,
        }
    }
}

impl RequestView<'_> {
    /// The request's host without port: `Host` for HTTP/1.1, `:authority` for HTTP/2.
    pub fn host(&self) -> Option<&str> {
        let raw = match self.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) {
            Some(h) => h,
            None => self.uri.authority()?.as_str(),
        };
        Some(strip_port(raw))
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

impl RouteMatch {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.host_matches(req)
            && self.path.matches(req.uri.path())
            && (self.methods.is_empty() || self.methods.contains(req.method))
            && self.headers.iter().all(|h| h.matches(req.headers))
    }

    fn host_matches(&self, req: &RequestView<'_>) -> bool {
        let Some(rule) = &self.host else { return true };
        let Some(host) = req.host() else { return false };
        match rule {
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Regex(r) => r.is_match(path),
        }
    }
}

impl HeaderMatch {
    fn matches(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.name).iter().peekable();
        match &self.rule {
            HeaderRule::Present => values.peek().is_some(),
            HeaderRule::Absent => values.peek().is_none(),
            HeaderRule::Exact(v) => values.any(|h| h.as_bytes() == v.as_bytes()),
            HeaderRule::Regex(r) => values.any(|h| h.to_str().is_ok_and(|s| r.is_match(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, parse};

    fn config(routes: &str) -> Config {
        let text = format!(
            "[[listeners]]\nlisten = \"127.0.0.1:1\"\n[clusters.c]\nendpoints = [{{ address = \"127.0.0.1:2\" }}]\n{routes}"
        );
        parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn route_for(cfg: &Config, method: &str, uri: &str, headers: &[(&str, &str)]) -> Option<String> {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (parts, _) = b.body(()).unwrap().into_parts();
        let view = RequestView::from(&parts);
        cfg.routes
            .iter()
            .find(|r| r.matcher.matches(&view))
            .map(|r| r.name.clone())
    }

    #[test]
    fn first_matching_route_wins_in_declared_order() {
        let cfg = config(
            r#"
[[routes]]
name = "exact"
match = { path = "/health" }
cluster = "c"
[[routes]]
name = "regex"
match = { path_regex = "/users/[0-9]+" }
cluster = "c"
[[routes]]
name = "posts"
match = { path_prefix = "/api", methods = ["POST"] }
cluster = "c"
[[routes]]
name = "canary"
match = { path_prefix = "/api", headers = [{ name = "x-canary", value = "1" }] }
cluster = "c"
[[routes]]
name = "admin-host"
match = { host = "admin.example.com" }
cluster = "c"
[[routes]]
name = "wild"
match = { host = "*.example.com", headers = [{ name = "x-debug", present = false }] }
cluster = "c"
"#,
        );
        let r = |m, u, h: &[(&str, &str)]| route_for(&cfg, m, u, h);
        assert_eq!(r("GET", "/health", &[]).as_deref(), Some("exact"));
        assert_eq!(r("GET", "/health/x", &[]), None);
        assert_eq!(r("GET", "/users/42", &[]).as_deref(), Some("regex"));
        assert_eq!(r("GET", "/users/42/x", &[]), None, "regexes match the whole path");
        assert_eq!(r("POST", "/api/x", &[("x-canary", "1")]).as_deref(), Some("posts"));
        assert_eq!(r("GET", "/api/x", &[("x-canary", "1")]).as_deref(), Some("canary"));
        assert_eq!(r("GET", "/api/x", &[("x-canary", "2")]), None);
        assert_eq!(
            r("GET", "/", &[("host", "ADMIN.example.com:8080")]).as_deref(),
            Some("admin-host")
        );
        assert_eq!(
            r("GET", "http://shop.example.com/", &[]).as_deref(),
            Some("wild"),
            "HTTP/2 :authority"
        );
        assert_eq!(r("GET", "/", &[("host", "shop.example.com"), ("x-debug", "1")]), None);
        assert_eq!(
            r("GET", "/", &[("host", "example.com")]),
            None,
            "a wildcard needs a subdomain"
        );
    }

    #[test]
    fn host_port_is_ignored_and_ipv6_kept() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }
}
