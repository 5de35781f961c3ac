//! `[auth]` and a route's `auth = { ... }`: the TOML as written, the typed config, and their
//! checks. Key files and secrets are read here, at load time, so a reload with a broken key file
//! is rejected like any other config error and the old config keeps serving.
//!
//! ```toml
//! [auth]
//! header = "x-api-key"            # where API keys are read (default)
//! query = "api_key"               # ... or from this query parameter (off by default)
//! [[auth.api_keys]]
//! tenant = "acme"
//! sha256 = "9f86d081884c7d65..."  # printf %s "$KEY" | sha256sum
//! scopes = ["orders:read"]        # optional
//!
//! [auth.jwt]
//! algorithms = ["RS256", "ES256"]
//! pem_file = "keys/issuer.pub.pem"
//! jwks_file = "keys/issuer.jwks.json"
//! hs256_secret_env = "JWT_SECRET"
//! issuer = "https://id.example.com"
//! audience = ["shop-api"]
//! leeway = "60s"
//! tenant_claim = "tenant"
//! forward_claims = { sub = "x-user" }
//!
//! [[routes]]
//! auth = { require = "jwt", tenants = ["acme"], scopes = ["orders:read"], forward_credentials = false }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ballast_model::HumanDuration;
use http::HeaderName;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::{ConfigError, did_you_mean};

pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";
/// Envoy's jwt_authn default clock skew.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
pub const MIN_HS256_SECRET: usize = 32;
/// The algorithms a token may be signed with. `none` is never one of them.
pub const ALGORITHMS: [&str; 3] = ["HS256", "RS256", "ES256"];

// ---------------------------------------------------------------------------------------------
// As written

/// `[auth]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    pub header: Option<Spanned<String>>,
    pub query: Option<Spanned<String>>,
    #[serde(default)]
    pub api_keys: Vec<Spanned<ApiKeySpec>>,
    pub jwt: Option<Spanned<JwtSpec>>,
}

/// `[[auth.api_keys]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    pub tenant: Spanned<String>,
    /// SHA-256 of the key, hex.
    pub sha256: Spanned<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[auth.jwt]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    pub algorithms: Spanned<Vec<String>>,
    pub pem_file: Option<Spanned<String>>,
    pub jwks_file: Option<Spanned<String>>,
    pub hs256_secret_env: Option<Spanned<String>>,
    pub issuer: Option<OneOrMany>,
    pub audience: Option<OneOrMany>,
    pub leeway: Option<Spanned<HumanDuration>>,
    pub tenant_claim: Option<String>,
    #[serde(default)]
    pub forward_claims: BTreeMap<String, Spanned<String>>,
}

/// `"a"` or `["a", "b"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A route's `auth = { require = "jwt", tenants = [...], scopes = [...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAuthSpec {
    pub require: Spanned<Require>,
    #[serde(default)]
    pub tenants: Vec<Spanned<String>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub forward_credentials: bool,
}

/// Which credentials a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Require {
    ApiKey,
    Jwt,
    /// A bearer token if the request has one, else an API key.
    Any,
}

// ---------------------------------------------------------------------------------------------
// Typed

/// The authenticators, shared by the routes that use them. Empty when `[auth]` is absent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Auth {
    pub api_keys: Option<ApiKeys>,
    pub jwt: Option<Jwt>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeys {
    #[serde(serialize_with = "header_name")]
    pub header: HeaderName,
    pub query: Option<String>,
    pub keys: Vec<ApiKey>,
}

#[derive(Clone, Serialize)]
pub struct ApiKey {
    pub tenant: String,
    /// Never printed.
    #[serde(skip)]
    pub sha256: [u8; 32],
    pub scopes: Vec<String>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("tenant", &self.tenant)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Jwt {
    #[serde(serialize_with = "algorithms")]
    pub algorithms: Vec<Algorithm>,
    pub keys: Vec<JwtKey>,
    pub issuer: Vec<String>,
    pub audience: Vec<String>,
    #[serde(serialize_with = "duration")]
    pub leeway: Duration,
    pub tenant_claim: Option<String>,
    /// Claim name → upstream header.
    #[serde(serialize_with = "claim_headers")]
    pub forward_claims: Vec<(String, HeaderName)>,
    /// One per algorithm (jsonwebtoken wants a key's family to match every algorithm of a
    /// `Validation`): `iss`, `aud`, `exp` (required), `nbf` and the leeway, made once.
    #[serde(skip)]
    pub validations: Vec<Validation>,
}

/// One verification key. The key material is never printed.
#[derive(Clone, Serialize)]
pub struct JwtKey {
    pub kid: Option<String>,
    /// Where it came from: `pem_file "..."`, `jwks_file "..."`, `env JWT_SECRET`.
    pub source: String,
    /// Set when the JWKS entry names its algorithm: the only one it verifies.
    #[serde(serialize_with = "opt_algorithm")]
    pub alg: Option<Algorithm>,
    #[serde(skip)]
    pub key: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A route's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteAuth {
    pub require: Require,
    /// Tenants let through; any when empty.
    pub tenants: Vec<String>,
    /// Scopes the credentials must all carry.
    pub scopes: Vec<String>,
    /// Pass the API key / `Authorization` upstream (stripped by default).
    pub forward_credentials: bool,
}

// ---------------------------------------------------------------------------------------------
// Checks

fn err(errors: &mut Vec<ConfigError>, path: &str, span: Range<usize>, msg: impl Into<String>, fix: impl Into<String>) {
    errors.push(ConfigError::new(path, Some(span), msg).hint(fix));
}

/// `[auth]` to [`Auth`]; key files are read relative to `base` (the config file's folder).
pub fn validate(spec: Option<&AuthSpec>, base: &Path, errors: &mut Vec<ConfigError>) -> Auth {
    let Some(spec) = spec else {
        return Auth::default();
    };
    let api_keys = api_keys(spec, errors);
    let jwt = spec.jwt.as_ref().and_then(|j| jwt(j, base, errors));
    Auth { api_keys, jwt }
}

fn api_keys(spec: &AuthSpec, errors: &mut Vec<ConfigError>) -> Option<ApiKeys> {
    let header = match &spec.header {
        Some(h) => match HeaderName::from_bytes(h.get_ref().as_bytes()) {
            Ok(name) => name,
            Err(_) => {
                err(
                    errors,
                    "auth.header",
                    h.span(),
                    format!("invalid header name {:?}", h.get_ref()),
                    "header names are tokens such as \"x-api-key\"",
                );
                HeaderName::from_static(DEFAULT_API_KEY_HEADER)
            }
        },
        None => HeaderName::from_static(DEFAULT_API_KEY_HEADER),
    };
    if let Some(q) = &spec.query
        && (q.get_ref().is_empty() || q.get_ref().contains(['&', '=', '#', ' ']))
    {
        err(
            errors,
            "auth.query",
            q.span(),
            format!("invalid query parameter name {:?}", q.get_ref()),
            "write a plain name such as \"api_key\"",
        );
    }
    if spec.api_keys.is_empty() {
        if let Some(h) = &spec.header {
            err(
                errors,
                "auth.header",
                h.span(),
                "an API key header without [[auth.api_keys]]",
                "add [[auth.api_keys]] with tenant and sha256, or remove header",
            );
        }
        return None;
    }
    let mut keys: Vec<ApiKey> = Vec::new();
    for (i, k) in spec.api_keys.iter().enumerate() {
        let k = k.get_ref();
        let path = format!("auth.api_keys[{i}]");
        let tenant = k.tenant.get_ref();
        if tenant.is_empty() || tenant.chars().any(char::is_control) {
            err(
                errors,
                &format!("{path}.tenant"),
                k.tenant.span(),
                format!("{tenant:?} cannot be a tenant"),
                "give the tenant's name, without control characters",
            );
        }
        let Some(sha256) = parse_sha256(k.sha256.get_ref()) else {
            err(
                errors,
                &format!("{path}.sha256"),
                k.sha256.span(),
                format!("{:?} is not a SHA-256 in hex (64 hex digits)", k.sha256.get_ref()),
                "store the key's hash, never the key: printf %s \"$KEY\" | sha256sum",
            );
            continue;
        };
        if let Some(other) = keys.iter().find(|o| o.sha256 == sha256) {
            err(
                errors,
                &format!("{path}.sha256"),
                k.sha256.span(),
                format!("the same key is already given to tenant {:?}", other.tenant),
                "give each tenant its own key",
            );
            continue;
        }
        keys.push(ApiKey {
            tenant: tenant.clone(),
            sha256,
            scopes: k.scopes.clone(),
        });
    }
    Some(ApiKeys {
        header,
        query: spec.query.as_ref().map(|q| q.get_ref().clone()),
        keys,
    })
}

/// 64 hex digits (either case) to bytes.
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn jwt(spec: &Spanned<JwtSpec>, base: &Path, errors: &mut Vec<ConfigError>) -> Option<Jwt> {
    let before = errors.len();
    let s = spec.get_ref();
    let mut algorithms = Vec::new();
    for name in s.algorithms.get_ref() {
        let alg = match name.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => {
                let fix = if other.eq_ignore_ascii_case("none") {
                    "unsigned tokens are never accepted; list some of HS256, RS256, ES256".to_owned()
                } else {
                    match did_you_mean(other, ALGORITHMS) {
                        Some(s) => format!("did you mean {s:?}?"),
                        None => format!("algorithms are {}", ALGORITHMS.join(", ")),
                    }
                };
                err(
                    errors,
                    "auth.jwt.algorithms",
                    s.algorithms.span(),
                    format!("unknown or unsupported algorithm {other:?}"),
                    fix,
                );
                continue;
            }
        };
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if s.algorithms.get_ref().is_empty() {
        err(
            errors,
            "auth.jwt.algorithms",
            s.algorithms.span(),
            "no algorithms: no token could be verified",
            "list some of HS256, RS256, ES256",
        );
    }

    let mut keys = Vec::new();
    if let Some(file) = &s.pem_file
        && let Some(text) = read_key_file(errors, "auth.jwt.pem_file", file, base, "PEM")
    {
        let source = format!("pem_file {:?}", file.get_ref());
        match DecodingKey::from_rsa_pem(&text).or_else(|_| DecodingKey::from_ec_pem(&text)) {
            Ok(key) => keys.push(JwtKey {
                kid: None,
                source,
                alg: None,
                key,
            }),
            Err(e) => err(
                errors,
                "auth.jwt.pem_file",
                file.span(),
                format!("{:?} holds no RSA or EC public key: {e}", file.get_ref()),
                "give a PEM public key (-----BEGIN PUBLIC KEY-----), such as `openssl pkey -pubout` prints",
            ),
        }
    }
    if let Some(file) = &s.jwks_file
        && let Some(text) = read_key_file(errors, "auth.jwt.jwks_file", file, base, "JWKS")
    {
        match serde_json::from_slice::<JwkSet>(&text) {
            Err(e) => err(
                errors,
                "auth.jwt.jwks_file",
                file.span(),
                format!("{:?} is not a JWKS: {e}", file.get_ref()),
                "give a JSON Web Key Set: {\"keys\": [{\"kty\": \"EC\", \"kid\": ..., ...}]}",
            ),
            Ok(set) if set.keys.is_empty() => err(
                errors,
                "auth.jwt.jwks_file",
                file.span(),
                format!("{:?} has no keys", file.get_ref()),
                "add the issuer's public keys to the set",
            ),
            Ok(set) => {
                for (i, jwk) in set.keys.iter().enumerate() {
                    let alg = jwk
                        .common
                        .key_algorithm
                        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
                    match DecodingKey::from_jwk(jwk) {
                        Ok(key) => keys.push(JwtKey {
                            kid: jwk.common.key_id.clone(),
                            source: format!("jwks_file {:?} key {i}", file.get_ref()),
                            alg,
                            key,
                        }),
                        Err(e) => err(
                            errors,
                            "auth.jwt.jwks_file",
                            file.span(),
                            format!("key {i} of {:?} cannot verify tokens: {e}", file.get_ref()),
                            "keep only RSA and EC (P-256) public keys in the set",
                        ),
                    }
                }
            }
        }
    }
    if let Some(var) = &s.hs256_secret_env {
        match std::env::var(var.get_ref()) {
            Ok(secret) if secret.len() >= MIN_HS256_SECRET => keys.push(JwtKey {
                kid: None,
                source: format!("env {}", var.get_ref()),
                alg: Some(Algorithm::HS256),
                key: DecodingKey::from_secret(secret.as_bytes()).expect("an HMAC key takes any bytes"),
            }),
            Ok(secret) => err(
                errors,
                "auth.jwt.hs256_secret_env",
                var.span(),
                format!(
                    "the secret in ${} is {} bytes, shorter than {MIN_HS256_SECRET}",
                    var.get_ref(),
                    secret.len()
                ),
                "use a random secret of at least 32 bytes (RFC 7518 §3.2), e.g. `openssl rand -hex 32`",
            ),
            Err(_) => err(
                errors,
                "auth.jwt.hs256_secret_env",
                var.span(),
                format!("environment variable {} is not set", var.get_ref()),
                "set it in the sidecar's environment (secrets are never written in the config)",
            ),
        }
    }
    // Every algorithm needs a key of its family, and every key an algorithm that uses it.
    for alg in &algorithms {
        if !keys.iter().any(|k| k.key.family() == alg.family()) && errors.len() == before {
            let fix = match alg.family() {
                AlgorithmFamily::Hmac => "set hs256_secret_env to the variable holding the secret",
                _ => "set pem_file or jwks_file to the issuer's public key(s)",
            };
            err(
                errors,
                "auth.jwt.algorithms",
                s.algorithms.span(),
                format!("{alg:?} is allowed but no key for it is configured"),
                fix,
            );
        }
    }
    if keys.is_empty() && errors.len() == before {
        err(
            errors,
            "auth.jwt",
            spec.span(),
            "no keys: no token could be verified",
            "set pem_file, jwks_file or hs256_secret_env",
        );
    }
    if s.hs256_secret_env.is_some()
        && !algorithms.contains(&Algorithm::HS256)
        && let Some(var) = &s.hs256_secret_env
    {
        err(
            errors,
            "auth.jwt.hs256_secret_env",
            var.span(),
            "an HS256 secret while HS256 is not in algorithms",
            "add \"HS256\" to algorithms, or remove hs256_secret_env",
        );
    }
    let leeway = match &s.leeway {
        Some(l) if l.get_ref().get() > Duration::from_secs(600) => {
            err(
                errors,
                "auth.jwt.leeway",
                l.span(),
                format!("leeway {} is over 10 minutes", l.get_ref()),
                "a leeway absorbs clock skew; use seconds, e.g. \"60s\"",
            );
            DEFAULT_LEEWAY
        }
        Some(l) => l.get_ref().get(),
        None => DEFAULT_LEEWAY,
    };
    let mut forward_claims = Vec::new();
    for (claim, header) in &s.forward_claims {
        match HeaderName::from_bytes(header.get_ref().as_bytes()) {
            // These say where the request goes and how it travels, not who sent it.
            Ok(h)
                if h == http::header::HOST
                    || h == http::header::CONTENT_LENGTH
                    || crate::proxy::headers::is_hop_by_hop(&h) =>
            {
                err(
                    errors,
                    &format!("auth.jwt.forward_claims.{claim}"),
                    header.span(),
                    format!("a claim cannot be forwarded as {:?}", header.get_ref()),
                    "Host, Content-Length and the hop-by-hop headers (Connection, Keep-Alive, TE, Transfer-Encoding, Upgrade, Proxy-*) belong to the request; name a header of its own such as \"x-user\"",
                )
            }
            Ok(h) => forward_claims.push((claim.clone(), h)),
            Err(_) => err(
                errors,
                &format!("auth.jwt.forward_claims.{claim}"),
                header.span(),
                format!("invalid header name {:?}", header.get_ref()),
                "header names are tokens such as \"x-user\"",
            ),
        }
    }
    let issuer = s
        .issuer
        .as_ref()
        .map(|i| OneOrMany::into_vec(i.clone()))
        .unwrap_or_default();
    let audience = s
        .audience
        .as_ref()
        .map(|a| OneOrMany::into_vec(a.clone()))
        .unwrap_or_default();

    let validations = algorithms
        .iter()
        .map(|alg| {
            let mut v = Validation::new(*alg);
            v.leeway = leeway.as_secs();
            v.validate_nbf = true;
            // jsonwebtoken checks `iss` and `aud` only when present: a configured one must be.
            let mut required = vec!["exp"];
            required.extend((!issuer.is_empty()).then_some("iss"));
            required.extend((!audience.is_empty()).then_some("aud"));
            v.set_required_spec_claims(&required);
            if !issuer.is_empty() {
                v.set_issuer(&issuer);
            }
            if audience.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(&audience);
            }
            v
        })
        .collect();
    (errors.len() == before).then(|| Jwt {
        algorithms,
        keys,
        issuer,
        audience,
        leeway,
        tenant_claim: s.tenant_claim.clone(),
        forward_claims,
        validations,
    })
}

/// Read a key file named in the config; its path is relative to the config file's folder.
fn read_key_file(
    errors: &mut Vec<ConfigError>,
    path: &str,
    file: &Spanned<String>,
    base: &Path,
    what: &str,
) -> Option<Vec<u8>> {
    let name = Path::new(file.get_ref());
    let full: PathBuf = if name.is_absolute() {
        name.to_path_buf()
    } else {
        base.join(name)
    };
    std::fs::read(&full)
        .map_err(|e| {
            err(
                errors,
                path,
                file.span(),
                format!("cannot read {what} file {:?}: {e}", full.display().to_string()),
                "check the path (relative to the config file's folder) and its permissions",
            )
        })
        .ok()
}

/// A route's `auth`, checked against the authenticators `[auth]` configured.
pub fn route(errors: &mut Vec<ConfigError>, path: &str, spec: &RouteAuthSpec, auth: &Auth) -> RouteAuth {
    let require = *spec.require.get_ref();
    let span = spec.require.span();
    let p = |f: &str| format!("{path}.{f}");
    match require {
        Require::Jwt if auth.jwt.is_none() => err(
            errors,
            &p("require"),
            span,
            "the route requires a JWT but [auth.jwt] is not configured",
            "add [auth.jwt] with algorithms and a key, or require \"api_key\"",
        ),
        Require::ApiKey if auth.api_keys.is_none() => err(
            errors,
            &p("require"),
            span,
            "the route requires an API key but [[auth.api_keys]] has none",
            "add [[auth.api_keys]] with tenant and sha256, or require \"jwt\"",
        ),
        Require::Any if auth.api_keys.is_none() && auth.jwt.is_none() => err(
            errors,
            &p("require"),
            span,
            "the route requires credentials but [auth] configures none",
            "add [[auth.api_keys]] or [auth.jwt]",
        ),
        _ => {}
    }
    // With API keys only, the tenants are known: a name not among them is a typo.
    if require == Require::ApiKey
        && let Some(keys) = &auth.api_keys
    {
        let known: HashSet<&str> = keys.keys.iter().map(|k| k.tenant.as_str()).collect();
        for t in &spec.tenants {
            if !known.contains(t.get_ref().as_str()) {
                let fix = match did_you_mean(t.get_ref(), known.iter().copied()) {
                    Some(s) => format!("did you mean {s:?}?"),
                    None => "add an [[auth.api_keys]] entry for it, or remove it".to_owned(),
                };
                err(
                    errors,
                    &p("tenants"),
                    t.span(),
                    format!("no API key belongs to tenant {:?}", t.get_ref()),
                    fix,
                );
            }
        }
    }
    RouteAuth {
        require,
        tenants: spec.tenants.iter().map(|t| t.get_ref().clone()).collect(),
        scopes: spec.scopes.clone(),
        forward_credentials: spec.forward_credentials,
    }
}

fn header_name<S: serde::Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(h.as_str())
}
fn algorithms<S: serde::Serializer>(algs: &[Algorithm], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(algs.iter().map(|a| format!("{a:?}")))
}
fn opt_algorithm<S: serde::Serializer>(alg: &Option<Algorithm>, s: S) -> Result<S::Ok, S::Error> {
    match alg {
        Some(a) => s.collect_str(&format_args!("{a:?}")),
        None => s.serialize_none(),
    }
}
fn duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&HumanDuration(*d))
}
fn claim_headers<S: serde::Serializer>(pairs: &[(String, HeaderName)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (claim, header) in pairs {
        map.serialize_entry(claim, header.as_str())?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_from_hex_in_either_case() {
        let lower = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let parsed = parse_sha256(lower).unwrap();
        assert_eq!(parsed[0], 0x9f);
        assert_eq!(parsed[31], 0x08);
        assert_eq!(parse_sha256(&lower.to_uppercase()), Some(parsed));
        assert_eq!(parse_sha256(&lower[..62]), None, "too short");
        assert_eq!(parse_sha256(&format!("{}zz", &lower[..62])), None, "not hex");
        assert_eq!(parse_sha256("test"), None, "a key, not its hash");
    }
}
