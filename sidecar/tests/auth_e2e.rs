//! End-to-end: auth through the real binary. JWTs (HS256 from an environment secret, RS256 from
//! a PEM file, ES256 from a JWKS file), API keys per tenant, 401 versus 403, tenant-matched
//! faults, credentials stripped, a reload with a missing key file, and the failure counters.

mod common;

use std::path::{Path, PathBuf};

use ballast_model::stats::StatsSnapshot;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};

const SECRET: &str = "e2e-secret-0123456789abcdef0123456789";
const SECRET_ENV: &str = "BALLAST_E2E_JWT_SECRET";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn key(name: &str) -> Vec<u8> {
    std::fs::read(keys_dir().join(name)).unwrap()
}

fn sha256_hex(key: &str) -> String {
    ballast_sidecar::auth::api_key::hex(&ballast_sidecar::auth::api_key::hash(key.as_bytes()))
}

/// `[auth]` with two tenants' API keys and a JWT issuer whose keys are in `keys`.
fn auth_section(keys: &Path) -> String {
    format!(
        r#"[runtime]
worker_threads = 2

[auth]
query = "api_key"
[[auth.api_keys]]
tenant = "acme"
sha256 = "{acme}"
[[auth.api_keys]]
tenant = "globex"
sha256 = "{globex}"

[auth.jwt]
algorithms = ["HS256", "RS256", "ES256"]
pem_file = "{dir}/rsa.pub.pem"
jwks_file = "{dir}/ec.jwks.json"
hs256_secret_env = "{SECRET_ENV}"
issuer = "https://id.test"
audience = "shop"
leeway = "5s"
tenant_claim = "org"
forward_claims = {{ sub = "x-user", org = "x-org" }}
"#,
        acme = sha256_hex("acme-secret-key"),
        globex = sha256_hex("globex-secret-key"),
        dir = keys.display(),
    )
}

const ROUTES: &str = r#"
[[routes]]
name = "orders"
match = { path_prefix = "/orders" }
cluster = "u"
auth = { require = "jwt", tenants = ["acme"], scopes = ["orders:read"] }

[[routes]]
name = "keys"
match = { path_prefix = "/keys" }
cluster = "u"
auth = { require = "api_key", tenants = ["acme"] }

[[routes]]
name = "open"
match = { path_prefix = "/" }
cluster = "u"

[[faults]]
kind = "abort"
status = 418
route = "keys"
path_prefix = "/keys/teapot"
tenant = "acme"

[[faults]]
kind = "abort"
status = 418
route = "open"
path_prefix = "/open/teapot"
tenant = "acme"
"#;

fn start(up: &MockUpstream, keys: &Path) -> Proc {
    let cfg = config_with(&auth_section(keys), &[("u", &[up.addr])], ROUTES);
    Proc::start(BIN, &cfg, &[(SECRET_ENV, SECRET)])
}

fn claims() -> Value {
    json!({ "iss": "https://id.test", "aud": "shop", "exp": get_current_timestamp() + 300,
            "sub": "alice", "org": "acme", "scope": "orders:read" })
}

fn with(patch: Value) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
    c
}

fn rs256(claims: &Value) -> String {
    let k = EncodingKey::from_rsa_pem(&key("rsa.key.pem")).unwrap();
    encode(&Header::new(Algorithm::RS256), claims, &k).unwrap()
}

fn es256(kid: &str, file: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    encode(&h, claims, &EncodingKey::from_ec_pem(&key(file)).unwrap()).unwrap()
}

fn hs256(secret: &str, claims: &Value) -> String {
    let k = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::HS256), claims, &k).unwrap()
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    let all: Vec<&str> = resp
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    all.join(" | ")
}

async fn get(http: &reqwest::Client, url: String, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = http.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn bearer(http: &reqwest::Client, sc: &Proc, token: &str) -> reqwest::Response {
    get(
        http,
        sc.url("/orders/1"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_are_verified_claims_forwarded_and_refusals_say_401_or_403() {
    let up = MockUpstream::start("u").await;
    let sc = start(&up, &keys_dir());
    let http = client();

    // Valid, with each algorithm and key source: claims forwarded, Authorization stripped,
    // client-sent copies of the claim headers replaced.
    for token in [
        rs256(&claims()),
        es256("ec-2", "ec-2.key.pem", &claims()),
        es256("ec-1", "ec-1.key.pem", &claims()),
        hs256(SECRET, &claims()),
    ] {
        let resp = get(
            &http,
            sc.url("/orders/1"),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-user", "mallory"),
                ("x-ballast-tenant", "globex"),
            ],
        )
        .await;
        let e = echo(resp).await;
        let h = &e["headers"];
        assert_eq!(h["x-user"], json!(["alice"]), "{e}");
        assert_eq!(h["x-org"], json!(["acme"]));
        assert_eq!(
            h["x-ballast-tenant"],
            json!(["acme"]),
            "the verified tenant, not the client's"
        );
        assert!(h.get("authorization").is_none(), "credentials are not forwarded: {e}");
    }

    // 401: expired, wrong audience, wrong key, unsigned, none at all.
    let expired = bearer(
        &http,
        &sc,
        &rs256(&with(json!({ "exp": get_current_timestamp() - 600 }))),
    )
    .await;
    assert_eq!(expired.status(), 401);
    assert_eq!(error_class(&expired), "unauthorized");
    let challenge = header(&expired, "www-authenticate");
    assert!(
        challenge.starts_with("Bearer realm=\"ballast\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(challenge.contains("expired"), "{challenge}");

    let wrong_aud = bearer(&http, &sc, &rs256(&with(json!({ "aud": "billing" })))).await;
    assert_eq!(wrong_aud.status(), 401);
    assert!(header(&wrong_aud, "www-authenticate").contains("error=\"invalid_token\""));

    let other = EncodingKey::from_rsa_pem(&key("rsa-other.key.pem")).unwrap();
    let forged = encode(&Header::new(Algorithm::RS256), &claims(), &other).unwrap();
    assert_eq!(bearer(&http, &sc, &forged).await.status(), 401);
    // ec-2's signature presented under ec-1's kid.
    assert_eq!(
        bearer(&http, &sc, &es256("ec-1", "ec-2.key.pem", &claims()))
            .await
            .status(),
        401
    );
    assert_eq!(
        bearer(&http, &sc, &hs256("not-the-secret-0123456789abcdef0123", &claims()))
            .await
            .status(),
        401
    );

    let none = format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(&claims()));
    let resp = bearer(&http, &sc, &none).await;
    assert_eq!(resp.status(), 401, "alg none is rejected");

    let missing = get(&http, sc.url("/orders/1"), &[]).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(header(&missing, "www-authenticate"), "Bearer realm=\"ballast\"");

    // 403: valid, but without the scope, or of a tenant the route does not list.
    let no_scope = bearer(&http, &sc, &rs256(&with(json!({ "scope": "orders:write" })))).await;
    assert_eq!(no_scope.status(), 403);
    assert_eq!(error_class(&no_scope), "forbidden");
    assert!(
        header(&no_scope, "www-authenticate").contains("error=\"insufficient_scope\""),
        "{}",
        header(&no_scope, "www-authenticate")
    );
    let scp_array = bearer(
        &http,
        &sc,
        &rs256(&with(json!({ "scope": null, "scp": ["orders:read"] }))),
    )
    .await;
    assert_eq!(scp_array.status(), 200, "scopes from an scp array count too");
    let globex = bearer(&http, &sc, &rs256(&with(json!({ "org": "globex" })))).await;
    assert_eq!(globex.status(), 403);
    assert_eq!(upstream_of(&globex), "", "a refused request never reaches the upstream");

    let expect = [
        ("missing", 1),
        ("invalid", 4),
        ("expired", 1),
        ("claims", 1),
        ("forbidden", 2),
    ];
    let stats: StatsSnapshot = admin_json(&sc, "/stats").await;
    let counted = &stats.routes["orders"].counters;
    for (reason, n) in expect {
        assert_eq!(counted.auth_failures.get(reason), Some(&n), "{reason}: {counted:?}");
    }
    assert_eq!(counted.by_error[&ballast_model::ErrorClass::Unauthorized], 7);
    assert_eq!(counted.by_error[&ballast_model::ErrorClass::Forbidden], 2);
    let metrics = metrics_text(&sc).await;
    for (reason, n) in expect {
        let line = format!("ballast_route_auth_failures_total{{route=\"orders\",reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
    assert!(metrics.contains("ballast_route_errors_total{route=\"orders\",error=\"unauthorized\"} 7"));
    assert_eq!(up.requests(), 5, "only the accepted requests reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_identify_tenants_for_routes_and_tenant_faults() {
    let up = MockUpstream::start("u").await;
    let sc = start(&up, &keys_dir());
    let http = client();

    let e = echo(
        get(
            &http,
            sc.url("/keys/a"),
            &[("x-api-key", "acme-secret-key"), ("x-ballast-tenant", "globex")],
        )
        .await,
    )
    .await;
    assert_eq!(e["headers"]["x-ballast-tenant"], json!(["acme"]), "{e}");
    assert!(e["headers"].get("x-api-key").is_none(), "the key is not forwarded: {e}");

    let e = echo(get(&http, sc.url("/keys/a?x=1&api_key=acme-secret-key"), &[]).await).await;
    assert_eq!(e["path"], "/keys/a?x=1", "the key is taken out of the query");
    assert_eq!(e["headers"]["x-ballast-tenant"], json!(["acme"]));

    // The verified tenant selects the tenant's fault; a claimed one does not.
    let teapot = get(&http, sc.url("/keys/teapot"), &[("x-api-key", "acme-secret-key")]).await;
    assert_eq!(teapot.status(), 418);
    let spoofed = get(&http, sc.url("/keys/teapot"), &[("x-ballast-tenant", "acme")]).await;
    assert_eq!(
        spoofed.status(),
        401,
        "no key: the header claims a tenant nobody proved"
    );
    assert_eq!(
        header(&spoofed, "www-authenticate"),
        "ApiKey realm=\"ballast\", header=\"x-api-key\", query=\"api_key\""
    );
    // Without auth on the route, the header still names the tenant (the fallback).
    let open = get(&http, sc.url("/open/teapot"), &[("x-ballast-tenant", "acme")]).await;
    assert_eq!(open.status(), 418);
    assert_eq!(get(&http, sc.url("/open/teapot"), &[]).await.status(), 200);

    let wrong = get(&http, sc.url("/keys/a"), &[("x-api-key", "acme-secret-kez")]).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(error_class(&wrong), "unauthorized");
    let globex = get(&http, sc.url("/keys/teapot"), &[("x-api-key", "globex-secret-key")]).await;
    assert_eq!(globex.status(), 403, "a valid key of a tenant the route does not allow");
    assert_eq!(error_class(&globex), "forbidden");

    let stats: StatsSnapshot = admin_json(&sc, "/stats").await;
    let c = &stats.routes["keys"].counters;
    assert_eq!(c.auth_failures.get("missing"), Some(&1), "{c:?}");
    assert_eq!(c.auth_failures.get("invalid"), Some(&1), "{c:?}");
    assert_eq!(c.auth_failures.get("forbidden"), Some(&1), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_missing_key_file_is_rejected_and_the_old_keys_keep_serving() {
    let up = MockUpstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    for f in ["rsa.pub.pem", "ec.jwks.json"] {
        std::fs::copy(keys_dir().join(f), dir.path().join(f)).unwrap();
    }
    let sc = start(&up, dir.path());
    let http = client();
    let token = rs256(&claims());
    assert_eq!(bearer(&http, &sc, &token).await.status(), 200);

    std::fs::remove_file(dir.path().join("rsa.pub.pem")).unwrap();
    let cfg = config_with(&auth_section(dir.path()), &[("u", &[up.addr])], ROUTES);
    sc.write_config(&cfg.replace("leeway = \"5s\"", "leeway = \"10s\""));
    let resp = http.post(sc.admin_url("/config")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("auth.jwt.pem_file: cannot read PEM file"), "{text}");

    assert_eq!(
        bearer(&http, &sc, &token).await.status(),
        200,
        "the key read at the last good load still verifies"
    );
    let running: Value = admin_json(&sc, "/config").await;
    assert_eq!(
        running["auth"]["jwt"]["leeway"], "5s",
        "the running config is unchanged"
    );
    assert!(
        running["auth"]["api_keys"]["keys"][0].get("sha256").is_none(),
        "hashes are not shown: {}",
        running["auth"]
    );
}
