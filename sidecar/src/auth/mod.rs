//! Auth: who is calling (an API key of a tenant, or a JWT), and whether the route lets them in.
//!
//! A route with `auth` gets a [`Guard`], made once per config. [`Guard::check`] runs in
//! `Gateway::handle` before the inbound faults are selected and answers (401/403) after they
//! had their turn (see there why). On success it leaves the request with:
//! - the verified tenant as the `x-ballast-tenant` header (upstream, and for fault `tenant`
//!   matching and `tenant` rate-limit keys: [`verified_tenant`]); a client-sent
//!   `x-ballast-tenant` is always removed first, so it cannot be spoofed;
//! - the configured `forward_claims` as headers (client-sent ones of those names removed first);
//! - the credentials removed (the API key header or query parameter, `Authorization`) unless the
//!   route says `forward_credentials = true`.
//!
//! 401 carries `WWW-Authenticate` (`Bearer ... error="invalid_token"` per RFC 6750 for a bad
//! token, `ApiKey header="x-api-key"` for API keys); 403 means valid credentials that the route
//! does not allow (a tenant not listed, a scope missing).

pub mod api_key;
pub mod jwt;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::request::Parts;

use crate::config::{ApiKeys, Auth, Jwt, Require, RouteAuth};
use crate::faults::http::TENANT_HEADER;
use ballast_model::ErrorClass;

/// The tenant a route's auth verified: its `x-ballast-tenant` header, which [`Guard::check`]
/// set after removing any client-sent one. `None` on a route without auth.
pub fn verified_tenant<'a>(guard: Option<&Guard>, parts: &'a Parts) -> Option<&'a HeaderValue> {
    guard.and(parts.headers.get(TENANT_HEADER))
}

/// Why a request was refused, the label of `ballast_route_auth_failures_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No credentials.
    Missing,
    /// Unknown API key; a malformed, unsigned or wrongly signed token.
    Invalid,
    /// The token's `exp` is past.
    Expired,
    /// The token's `nbf` is ahead.
    NotYetValid,
    /// Wrong issuer or audience, or a required claim missing.
    Claims,
    /// Valid credentials the route does not allow (tenant, scope): 403.
    Forbidden,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Missing,
        Reason::Invalid,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::Claims,
        Reason::Forbidden,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Invalid => "invalid",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Claims => "claims",
            Reason::Forbidden => "forbidden",
        }
    }

    pub const fn class(self) -> ErrorClass {
        match self {
            Reason::Forbidden => ErrorClass::Forbidden,
            _ => ErrorClass::Unauthorized,
        }
    }
}

/// Which credentials a denial was about, for the challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Bearer,
    ApiKey,
    /// Nothing was presented on a route taking either.
    Either,
}

/// A refused request: why, and the challenge to send back.
#[derive(Debug)]
pub struct Denial {
    pub reason: Reason,
    /// For logs; never sent to the client beyond the RFC 6750 description.
    pub detail: String,
    /// `WWW-Authenticate` values (none for a 403 about a tenant).
    pub challenges: Vec<HeaderValue>,
}

/// A route's auth, ready to check requests.
pub struct Guard {
    policy: RouteAuth,
    api_keys: Option<ApiKeys>,
    jwt: Option<Jwt>,
    /// Client-sent headers that only the guard may set.
    reserved: Vec<HeaderName>,
    /// Each API key's tenant as a header value, made once (index as in `api_keys`).
    key_tenants: Vec<Option<HeaderValue>>,
}

/// Who the credentials belong to.
/// Who the credentials say the caller is: borrowed from the key's config for API keys (no
/// copies per request), owned for a token's claims.
struct Identity<'a> {
    scheme: Scheme,
    tenant: Option<std::borrow::Cow<'a, str>>,
    /// The tenant as `x-ballast-tenant` sends it (none if it is not a valid header value).
    tenant_header: Option<HeaderValue>,
    scopes: std::borrow::Cow<'a, [String]>,
    forward: Vec<(HeaderName, HeaderValue)>,
}

impl Guard {
    pub fn new(policy: RouteAuth, auth: &Auth) -> Guard {
        let jwt = auth.jwt.clone();
        let mut reserved = vec![TENANT_HEADER];
        if let Some(j) = &jwt {
            reserved.extend(j.forward_claims.iter().map(|(_, h)| h.clone()));
        }
        let key_tenants = auth.api_keys.iter().flat_map(|k| &k.keys);
        Guard {
            policy,
            key_tenants: key_tenants.map(|k| HeaderValue::from_str(&k.tenant).ok()).collect(),
            api_keys: auth.api_keys.clone(),
            jwt,
            reserved,
        }
    }

    /// Authenticate and authorize a request, editing its headers as the module doc says. The
    /// tenant header is set as soon as the credentials are verified (a 403 still has one).
    pub fn check(&self, parts: &mut Parts) -> Result<(), Denial> {
        for h in &self.reserved {
            parts.headers.remove(h);
        }
        let mut identity = self.authenticate(parts)?;
        if let Some(value) = identity.tenant_header.take() {
            parts.headers.insert(TENANT_HEADER, value);
        }
        self.authorize(&identity)?;
        for (h, v) in identity.forward {
            parts.headers.append(h, v);
        }
        if !self.policy.forward_credentials {
            match identity.scheme {
                Scheme::Bearer => _ = parts.headers.remove(AUTHORIZATION),
                _ => self.strip_api_key(parts),
            }
        }
        Ok(())
    }

    fn authenticate(&self, parts: &Parts) -> Result<Identity<'_>, Denial> {
        let bearer = bearer(parts);
        match self.policy.require {
            Require::Jwt => self.jwt(bearer),
            Require::ApiKey => self.api_key(parts),
            Require::Any => match (bearer, &self.jwt, &self.api_keys) {
                (Some(_), Some(_), _) | (_, Some(_), None) => self.jwt(bearer),
                (_, _, Some(keys)) if api_key::presented(keys, parts).is_some() || self.jwt.is_none() => {
                    self.api_key(parts)
                }
                _ => Err(self.deny(Scheme::Either, Reason::Missing, "no credentials")),
            },
        }
    }

    fn jwt(&self, bearer: Option<&str>) -> Result<Identity<'_>, Denial> {
        let cfg = self.jwt.as_ref().expect("validated: jwt routes have [auth.jwt]");
        let Some(token) = bearer else {
            return Err(self.deny(Scheme::Bearer, Reason::Missing, "no bearer token"));
        };
        let v = jwt::verify(cfg, token).map_err(|r| match r {
            jwt::Rejected::Invalid(d) => self.deny(Scheme::Bearer, Reason::Invalid, d),
            jwt::Rejected::Expired => self.deny(Scheme::Bearer, Reason::Expired, "the token expired"),
            jwt::Rejected::NotYetValid => self.deny(Scheme::Bearer, Reason::NotYetValid, "the token is not valid yet"),
            jwt::Rejected::Claims(d) => self.deny(Scheme::Bearer, Reason::Claims, d),
        })?;
        Ok(Identity {
            scheme: Scheme::Bearer,
            tenant_header: v.tenant.as_deref().and_then(|t| HeaderValue::from_str(t).ok()),
            tenant: v.tenant.map(std::borrow::Cow::Owned),
            scopes: std::borrow::Cow::Owned(v.scopes),
            forward: v.forward,
        })
    }

    fn api_key(&self, parts: &Parts) -> Result<Identity<'_>, Denial> {
        let keys = self.api_keys.as_ref().expect("validated: api_key routes have keys");
        let Some(key) = api_key::presented(keys, parts) else {
            return Err(self.deny(Scheme::ApiKey, Reason::Missing, "no API key"));
        };
        let digest = api_key::hash(&key);
        let Some(i) = api_key::find(keys, &digest) else {
            return Err(self.deny(Scheme::ApiKey, Reason::Invalid, "unknown API key"));
        };
        let k = &keys.keys[i];
        Ok(Identity {
            scheme: Scheme::ApiKey,
            tenant_header: self.key_tenants[i].clone(),
            tenant: Some(std::borrow::Cow::Borrowed(k.tenant.as_str())),
            scopes: std::borrow::Cow::Borrowed(&k.scopes),
            forward: Vec::new(),
        })
    }

    fn authorize(&self, id: &Identity<'_>) -> Result<(), Denial> {
        let p = &self.policy;
        if !p.tenants.is_empty() && !id.tenant.as_deref().is_some_and(|t| p.tenants.iter().any(|a| a == t)) {
            let detail = match &id.tenant {
                Some(t) => format!("tenant {t:?} is not allowed on this route"),
                None => "the credentials name no tenant".to_owned(),
            };
            return Err(Denial {
                reason: Reason::Forbidden,
                detail,
                challenges: Vec::new(),
            });
        }
        let missing: Vec<&str> = p
            .scopes
            .iter()
            .filter(|s| !id.scopes.contains(s))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let mut challenges = Vec::new();
            if id.scheme == Scheme::Bearer {
                let v = format!(
                    "Bearer realm=\"ballast\", error=\"insufficient_scope\", scope=\"{}\"",
                    p.scopes.join(" ")
                );
                challenges.extend(HeaderValue::from_str(&v).ok());
            }
            return Err(Denial {
                reason: Reason::Forbidden,
                detail: format!("missing scope {}", missing.join(" ")),
                challenges,
            });
        }
        Ok(())
    }

    fn strip_api_key(&self, parts: &mut Parts) {
        let Some(keys) = &self.api_keys else { return };
        parts.headers.remove(&keys.header);
        if let Some(q) = &keys.query
            && let Some(uri) = api_key::strip_query_param(&parts.uri, q)
        {
            parts.uri = uri;
        }
    }

    fn deny(&self, scheme: Scheme, reason: Reason, detail: impl Into<String>) -> Denial {
        let detail = detail.into();
        let mut challenges = Vec::new();
        if matches!(scheme, Scheme::Bearer | Scheme::Either) && self.jwt.is_some() {
            // RFC 6750 §3: no error code when the request had no token.
            let v = if reason == Reason::Missing {
                "Bearer realm=\"ballast\"".to_owned()
            } else {
                let description = match reason {
                    Reason::Expired => "the token expired",
                    Reason::NotYetValid => "the token is not valid yet",
                    Reason::Claims => "the token is not for this service",
                    _ => "the token is invalid",
                };
                format!("Bearer realm=\"ballast\", error=\"invalid_token\", error_description=\"{description}\"")
            };
            challenges.extend(HeaderValue::from_str(&v).ok());
        }
        if matches!(scheme, Scheme::ApiKey | Scheme::Either)
            && let Some(keys) = &self.api_keys
        {
            let mut v = format!("ApiKey realm=\"ballast\", header=\"{}\"", keys.header);
            if let Some(q) = &keys.query {
                v.push_str(&format!(", query=\"{q}\""));
            }
            challenges.extend(HeaderValue::from_str(&v).ok());
        }
        Denial {
            reason,
            detail,
            challenges,
        }
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApiKey, RouteAuth};

    fn guard(require: Require, tenants: &[&str], scopes: &[&str], forward_credentials: bool) -> Guard {
        let api_keys = ApiKeys {
            header: HeaderName::from_static("x-api-key"),
            query: Some("api_key".into()),
            keys: vec![
                ApiKey {
                    tenant: "acme".into(),
                    sha256: api_key::hash(b"acme-key"),
                    scopes: vec!["orders:read".into()],
                },
                ApiKey {
                    tenant: "globex".into(),
                    sha256: api_key::hash(b"globex-key"),
                    scopes: vec![],
                },
            ],
        };
        let jwt = jwt::tests::jwt_config(
            "algorithms = [\"HS256\"]\nhs256_secret_env = \"BALLAST_TEST_JWT_SECRET\"\ntenant_claim = \"org\"\nforward_claims = { sub = \"x-user\" }",
        );
        let policy = RouteAuth {
            require,
            tenants: tenants.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            forward_credentials,
        };
        Guard::new(
            policy,
            &Auth {
                api_keys: Some(api_keys),
                jwt: Some(jwt),
            },
        )
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn hs_token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(jwt::tests::SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn an_api_key_sets_the_tenant_and_is_stripped_and_spoofed_tenants_are_dropped() {
        let g = guard(Require::ApiKey, &[], &[], false);
        let mut p = parts(
            "/x?api_key=acme-key&q=1",
            &[("x-ballast-tenant", "globex"), ("x-user", "mallory")],
        );
        g.check(&mut p).unwrap();
        assert_eq!(p.headers["x-ballast-tenant"], "acme");
        assert_eq!(verified_tenant(Some(&g), &p), Some(&HeaderValue::from_static("acme")));
        assert_eq!(verified_tenant(None, &p), None, "no auth, no verified tenant");
        assert!(
            p.headers.get("x-user").is_none(),
            "a forwarded-claim header is not the client's to set"
        );
        assert_eq!(p.uri, "/x?q=1");

        let kept = guard(Require::ApiKey, &[], &[], true);
        let mut p = parts("/x", &[("x-api-key", "globex-key")]);
        kept.check(&mut p).unwrap();
        assert_eq!(p.headers["x-api-key"], "globex-key", "forward_credentials keeps it");
    }

    #[test]
    fn denials_say_why_with_the_right_challenge() {
        let g = guard(Require::ApiKey, &["acme"], &[], false);
        let missing = g.check(&mut parts("/", &[])).unwrap_err();
        assert_eq!(missing.reason, Reason::Missing);
        assert_eq!(missing.reason.class().status(), 401);
        assert_eq!(
            missing.challenges,
            [HeaderValue::from_static(
                "ApiKey realm=\"ballast\", header=\"x-api-key\", query=\"api_key\""
            )]
        );
        let wrong = g.check(&mut parts("/", &[("x-api-key", "nope")])).unwrap_err();
        assert_eq!(wrong.reason, Reason::Invalid);
        let mut p = parts("/", &[("x-api-key", "globex-key")]);
        let other = g.check(&mut p).unwrap_err();
        assert_eq!((other.reason, other.reason.class().status()), (Reason::Forbidden, 403));
        assert!(other.challenges.is_empty());
        assert_eq!(
            verified_tenant(Some(&g), &p),
            Some(&HeaderValue::from_static("globex")),
            "the verified tenant is known even when forbidden"
        );

        let scoped = guard(Require::Jwt, &[], &["orders:write"], false);
        let exp = jwt::tests::now() + 60;
        let t = hs_token(serde_json::json!({ "exp": exp, "org": "acme", "scope": "orders:read" }));
        let d = scoped
            .check(&mut parts("/", &[("authorization", &format!("Bearer {t}"))]))
            .unwrap_err();
        assert_eq!(d.reason, Reason::Forbidden);
        assert_eq!(
            d.challenges,
            [HeaderValue::from_static(
                "Bearer realm=\"ballast\", error=\"insufficient_scope\", scope=\"orders:write\""
            )]
        );
        let expired = hs_token(serde_json::json!({ "exp": jwt::tests::now() - 3600 }));
        let d = scoped
            .check(&mut parts("/", &[("authorization", &format!("bearer {expired}"))]))
            .unwrap_err();
        assert_eq!(d.reason, Reason::Expired);
        assert!(d.challenges[0].to_str().unwrap().contains("error=\"invalid_token\""));
        let d = scoped
            .check(&mut parts("/", &[("authorization", "Basic abc")]))
            .unwrap_err();
        assert_eq!(
            (d.reason, d.challenges[0].to_str().unwrap()),
            (Reason::Missing, "Bearer realm=\"ballast\"")
        );
    }

    #[test]
    fn either_credential_passes_a_route_that_takes_any() {
        let g = guard(Require::Any, &[], &[], false);
        let t = hs_token(serde_json::json!({ "exp": jwt::tests::now() + 60, "org": "initech", "sub": "bob" }));
        let mut p = parts("/", &[("authorization", &format!("Bearer {t}"))]);
        g.check(&mut p).unwrap();
        assert_eq!(p.headers["x-ballast-tenant"], "initech");
        assert_eq!(p.headers["x-user"], "bob");
        assert!(p.headers.get("authorization").is_none(), "stripped by default");
        let mut p = parts("/", &[("x-api-key", "acme-key")]);
        g.check(&mut p).unwrap();
        assert_eq!(p.headers["x-ballast-tenant"], "acme");
        let none = g.check(&mut parts("/", &[])).unwrap_err();
        assert_eq!(none.reason, Reason::Missing);
        assert_eq!(none.challenges.len(), 2, "both schemes offered: {:?}", none.challenges);
    }
}
