//! JWT verification with the `jsonwebtoken` crate: the key chosen by the token's `alg` and
//! `kid`, the signature, then `exp` (required), `nbf`, `iss` and `aud` with the leeway.
//!
//! Crypto backend: jsonwebtoken 12 needs exactly one; we use `aws_lc_rs` (what DESIGN asks
//! for). It builds with a C compiler alone (aws-lc-sys's `cc` builder: no cmake, clang or Go on
//! x86_64 Linux), which Debian's `build-essential` gives; a cold build of aws-lc-sys took about a
//! minute here on 2 cores. `rust_crypto` would be pure Rust but brings the `rsa` crate, whose
//! private-key operations have an open timing advisory (RUSTSEC-2023-0071; we only verify, but
//! one crypto stack is easier to keep current).
//!
//! `alg: none` cannot pass: `none` is not a jsonwebtoken `Algorithm` (the header does not even
//! parse), and only the configured algorithms are accepted. A key only verifies its own family
//! (an RSA public key is never used as an HMAC secret), and a JWKS key that names its `alg`
//! verifies only that one.

use http::{HeaderName, HeaderValue};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, decode, decode_header};
use serde_json::{Map, Value};

use crate::config::{Jwt, JwtKey};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Malformed, an algorithm not allowed (`none` included), no key for it, a bad signature.
    Invalid(String),
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is ahead (beyond the leeway).
    NotYetValid,
    /// Signed by a trusted key, but `iss`, `aud` or a required claim is wrong.
    Claims(String),
}

/// What a verified token says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Verified {
    pub tenant: Option<String>,
    pub scopes: Vec<String>,
    /// The configured `forward_claims` present in the token, as headers.
    pub forward: Vec<(HeaderName, HeaderValue)>,
}

/// Verify `token` (the text after `Bearer `).
pub fn verify(cfg: &Jwt, token: &str) -> Result<Verified, Rejected> {
    let header = decode_header(token).map_err(|e| Rejected::Invalid(format!("unreadable token header: {e}")))?;
    let Some(validation) = cfg.validations.iter().find(|v| v.algorithms == [header.alg]) else {
        return Err(Rejected::Invalid(format!("algorithm {:?} is not allowed", header.alg)));
    };
    let mut bad_signature = None;
    for key in candidates(cfg, &header) {
        match decode::<Map<String, Value>>(token, &key.key, validation) {
            Ok(data) => return Ok(claims(cfg, data.claims)),
            // Another key may have signed it (several keys, no kid).
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => bad_signature = Some(e),
            Err(e) => return Err(rejected(e.kind())),
        }
    }
    Err(Rejected::Invalid(match bad_signature {
        Some(_) => "the signature does not verify".to_owned(),
        None => match &header.kid {
            Some(kid) => format!("no {:?} key with kid {kid:?}", header.alg),
            None => format!("no {:?} key", header.alg),
        },
    }))
}

/// Keys that may have signed a token with this header: of its algorithm's family (and its
/// algorithm, when the key names one); with its `kid` if a key has that `kid`, else the keys
/// without a `kid` (a PEM file, the HS256 secret).
fn candidates<'a>(cfg: &'a Jwt, header: &'a Header) -> impl Iterator<Item = &'a JwtKey> + 'a {
    let usable = move |k: &&JwtKey| k.key.family() == header.alg.family() && k.alg.is_none_or(|a| a == header.alg);
    let kid = header.kid.as_deref();
    let has_kid = kid.is_some_and(|kid| cfg.keys.iter().filter(usable).any(|k| k.kid.as_deref() == Some(kid)));
    cfg.keys.iter().filter(usable).filter(move |k| {
        if has_kid {
            k.kid.as_deref() == kid
        } else {
            // A kid no key has: only keys that carry no kid of their own may try.
            kid.is_none() || k.kid.is_none()
        }
    })
}

fn rejected(kind: &ErrorKind) -> Rejected {
    match kind {
        ErrorKind::ExpiredSignature => Rejected::Expired,
        ErrorKind::ImmatureSignature => Rejected::NotYetValid,
        ErrorKind::InvalidIssuer => Rejected::Claims("wrong issuer".into()),
        ErrorKind::InvalidAudience => Rejected::Claims("wrong audience".into()),
        ErrorKind::MissingRequiredClaim(c) => Rejected::Claims(format!("no {c} claim")),
        ErrorKind::InvalidClaimFormat(c) => Rejected::Claims(format!("malformed {c} claim")),
        other => Rejected::Invalid(format!("{other:?}")),
    }
}

fn claims(cfg: &Jwt, claims: Map<String, Value>) -> Verified {
    let tenant = cfg
        .tenant_claim
        .as_ref()
        .and_then(|c| claims.get(c))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    let mut scopes: Vec<String> = Vec::new();
    if let Some(Value::String(s)) = claims.get("scope") {
        scopes.extend(s.split_whitespace().map(str::to_owned));
    }
    match claims.get("scp") {
        Some(Value::Array(items)) => scopes.extend(items.iter().filter_map(|v| v.as_str().map(str::to_owned))),
        Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
        _ => {}
    }
    let forward = cfg
        .forward_claims
        .iter()
        .filter_map(|(claim, header)| {
            let text = match claims.get(claim)? {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                Value::Null => return None,
                other => other.to_string(),
            };
            // A value with control characters cannot be a header: it is left out.
            Some((header.clone(), HeaderValue::from_bytes(text.as_bytes()).ok()?))
        })
        .collect();
    Verified {
        tenant,
        scopes,
        forward,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use jsonwebtoken::{Algorithm, EncodingKey, encode};
    use serde_json::json;

    use super::*;

    pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
    const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

    fn key_file(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(KEYS).join(name)).unwrap()
    }

    pub fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    /// A JWT config from TOML (the real validation path), with the test keys' folder as base.
    pub fn jwt_config(toml_jwt: &str) -> Jwt {
        // SAFETY: tests in this process only ever set this one variable, always to SECRET.
        unsafe { std::env::set_var("BALLAST_TEST_JWT_SECRET", SECRET) };
        let spec: crate::config::AuthSpec = toml::from_str(&format!("[jwt]\n{toml_jwt}")).unwrap();
        let mut errors = Vec::new();
        let auth = crate::config::auth::validate(Some(&spec), Path::new(KEYS), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        auth.jwt.unwrap()
    }

    fn all_keys() -> Jwt {
        jwt_config(
            r#"algorithms = ["HS256", "RS256", "ES256"]
pem_file = "rsa.pub.pem"
jwks_file = "ec.jwks.json"
hs256_secret_env = "BALLAST_TEST_JWT_SECRET"
issuer = "https://id.test"
audience = "shop"
leeway = "30s"
tenant_claim = "org"
forward_claims = { sub = "x-user", roles = "x-roles" }"#,
        )
    }

    fn token(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, key).unwrap()
    }

    fn good_claims() -> Value {
        json!({ "iss": "https://id.test", "aud": "shop", "exp": now() + 300, "sub": "alice",
                "org": "acme", "scope": "orders:read orders:write", "scp": ["admin"], "roles": ["a", "b"] })
    }

    fn rsa() -> EncodingKey {
        EncodingKey::from_rsa_pem(&key_file("rsa.key.pem")).unwrap()
    }
    fn ec(n: u8) -> EncodingKey {
        EncodingKey::from_ec_pem(&key_file(&format!("ec-{n}.key.pem"))).unwrap()
    }
    fn hs() -> EncodingKey {
        EncodingKey::from_secret(SECRET.as_bytes()).unwrap()
    }

    #[test]
    fn valid_tokens_of_each_algorithm_verify_and_yield_tenant_scopes_and_headers() {
        let cfg = all_keys();
        for t in [
            token(Algorithm::RS256, None, &rsa(), &good_claims()),
            token(Algorithm::ES256, Some("ec-2"), &ec(2), &good_claims()),
            token(Algorithm::ES256, Some("ec-1"), &ec(1), &good_claims()),
            token(Algorithm::HS256, None, &hs(), &good_claims()),
        ] {
            let v = verify(&cfg, &t).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(v.tenant.as_deref(), Some("acme"));
            assert_eq!(v.scopes, ["orders:read", "orders:write", "admin"]);
            let headers: Vec<(&str, &str)> = v
                .forward
                .iter()
                .map(|(h, v)| (h.as_str(), v.to_str().unwrap()))
                .collect();
            assert_eq!(headers, [("x-roles", "a,b"), ("x-user", "alice")]);
        }
    }

    #[test]
    fn time_claims_follow_the_leeway() {
        let cfg = all_keys();
        let with = |patch: Value| {
            let mut c = good_claims();
            c.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
            verify(&cfg, &token(Algorithm::RS256, None, &rsa(), &c))
        };
        assert_eq!(with(json!({ "exp": now() - 120 })), Err(Rejected::Expired));
        assert!(with(json!({ "exp": now() - 10 })).is_ok(), "within the 30 s leeway");
        assert_eq!(with(json!({ "nbf": now() + 120 })), Err(Rejected::NotYetValid));
        assert!(with(json!({ "nbf": now() + 10 })).is_ok(), "within the leeway");
        let mut no_exp = good_claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            verify(&cfg, &token(Algorithm::RS256, None, &rsa(), &no_exp)),
            Err(Rejected::Claims("no exp claim".into()))
        );
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let cfg = all_keys();
        let mut c = good_claims();
        c["aud"] = json!("billing");
        assert_eq!(
            verify(&cfg, &token(Algorithm::RS256, None, &rsa(), &c)),
            Err(Rejected::Claims("wrong audience".into()))
        );
        c["aud"] = json!(["billing", "shop"]);
        assert!(
            verify(&cfg, &token(Algorithm::RS256, None, &rsa(), &c)).is_ok(),
            "one of the audiences"
        );
        let mut c = good_claims();
        c["iss"] = json!("https://evil.test");
        assert_eq!(
            verify(&cfg, &token(Algorithm::RS256, None, &rsa(), &c)),
            Err(Rejected::Claims("wrong issuer".into()))
        );
        // Configured, so required: a token without them does not slip through.
        for claim in ["iss", "aud"] {
            let mut c = good_claims();
            c.as_object_mut().unwrap().remove(claim);
            assert_eq!(
                verify(&cfg, &token(Algorithm::RS256, None, &rsa(), &c)),
                Err(Rejected::Claims(format!("no {claim} claim")))
            );
        }
    }

    #[test]
    fn wrong_keys_and_unsigned_tokens_are_invalid() {
        let cfg = all_keys();
        let other = EncodingKey::from_rsa_pem(&key_file("rsa-other.key.pem")).unwrap();
        let invalid = |t: &str| matches!(verify(&cfg, t), Err(Rejected::Invalid(_)));
        assert!(invalid(&token(Algorithm::RS256, None, &other, &good_claims())));
        // ec-2's signature under ec-1's kid.
        assert!(invalid(&token(Algorithm::ES256, Some("ec-1"), &ec(2), &good_claims())));
        assert!(invalid(&token(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(b"another secret, also 32 bytes long!!").unwrap(),
            &good_claims()
        )));
        // `alg: none` with no signature, and with the signature of a real token.
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&good_claims())
        );
        assert!(invalid(&unsigned));
        let real = token(Algorithm::RS256, None, &rsa(), &good_claims());
        let sig = real.rsplit('.').next().unwrap();
        assert!(invalid(&format!(
            "{}.{}.{sig}",
            b64(&json!({"alg": "none"})),
            b64(&good_claims())
        )));
        // An algorithm not configured, and garbage.
        let only_rs = jwt_config("algorithms = [\"RS256\"]\npem_file = \"rsa.pub.pem\"");
        assert!(matches!(
            verify(&only_rs, &token(Algorithm::ES256, Some("ec-1"), &ec(1), &good_claims())),
            Err(Rejected::Invalid(m)) if m.contains("not allowed")
        ));
        assert!(invalid("not.a.token"));
        assert!(invalid(""));
        // The RSA public key is never tried as an HMAC secret (algorithm confusion).
        let pem = key_file("rsa.pub.pem");
        let confused = token(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(&pem).unwrap(),
            &good_claims(),
        );
        let rs_and_hs = jwt_config(
            "algorithms = [\"RS256\", \"HS256\"]\npem_file = \"rsa.pub.pem\"\nhs256_secret_env = \"BALLAST_TEST_JWT_SECRET\"",
        );
        assert!(matches!(verify(&rs_and_hs, &confused), Err(Rejected::Invalid(_))));
    }
}
