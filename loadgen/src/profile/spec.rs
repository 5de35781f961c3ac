//! A load profile as written: serde structs, unknown fields refused, spans kept where a later
//! check may point. [`super::check`] turns this into a [`super::Profile`].

use std::collections::BTreeMap;
use std::fmt;

use ballast_model::HumanDuration;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// The whole profile: the top level of a profile file, or a scenario's `[load]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadProfile {
    pub name: Option<String>,
    pub base_url: Option<Spanned<String>>,
    pub base_urls: Option<Spanned<Vec<Spanned<String>>>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub cookies: Option<bool>,
    pub http2: Option<bool>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<String>>,
    pub users: Option<Spanned<u64>>,
    pub hatch_rate: Option<Spanned<f64>>,
    pub rate: Option<Spanned<f64>>,
    pub max_users: Option<Spanned<u64>>,
    pub stages: Option<Spanned<Vec<Spanned<StageSpec>>>>,
    pub duration: Option<Spanned<HumanDuration>>,
    pub iterations: Option<Spanned<u64>>,
    #[serde(default)]
    pub thresholds: Vec<Spanned<ThresholdSpec>>,
    #[serde(default)]
    pub data: BTreeMap<String, Spanned<DataSpec>>,
    pub login: Option<Spanned<TransactionSpec>>,
    #[serde(default)]
    pub scenarios: Vec<Spanned<ScenarioSpec>>,
    #[serde(default)]
    pub transactions: Vec<Spanned<TransactionSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    pub name: Option<Spanned<String>>,
    pub weight: Option<Spanned<u64>>,
    pub login: Option<Spanned<TransactionSpec>>,
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub transactions: Vec<Spanned<TransactionSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionSpec {
    pub name: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub path: Spanned<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub body_file: Option<Spanned<String>>,
    pub body_template: Option<Spanned<String>>,
    pub status: Option<Spanned<StatusSpec>>,
    pub think: Option<Spanned<ThinkSpec>>,
    pub weight: Option<Spanned<u64>>,
    #[serde(default)]
    pub capture: BTreeMap<String, Spanned<String>>,
}

/// One step of the load shape: a level of users or of requests per second, reached by a
/// linear ramp or at once and held.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub users: Option<u64>,
    pub rate: Option<f64>,
    pub ramp: Option<HumanDuration>,
    pub hold: Option<HumanDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub file: Spanned<String>,
    #[serde(default)]
    pub order: RowOrder,
}

/// Which row of a data file a request gets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowOrder {
    /// The next row for each request, shared by all users, wrapping around.
    #[default]
    Sequential,
    /// A random row for each request.
    Random,
    /// The same row for all requests of a user: user N gets row N (wrapping around).
    PerUser,
}

/// Expected status: one code or a list.
#[derive(Debug)]
pub struct StatusSpec(pub Vec<i64>);

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status code such as 200, or a list such as [200, 201]")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSpec, E> {
                Ok(StatusSpec(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSpec, E> {
                Ok(StatusSpec(vec![v as i64]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusSpec, A::Error> {
                let mut codes = Vec::new();
                while let Some(c) = seq.next_element::<i64>()? {
                    codes.push(c);
                }
                Ok(StatusSpec(codes))
            }
        }
        d.deserialize_any(V)
    }
}

/// Think time after a transaction (closed model): `"1s"`, `{ uniform = ["1s", "3s"] }` or
/// `{ exponential = "2s" }` (the mean).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThinkSpec {
    Fixed(HumanDuration),
    Uniform(HumanDuration, HumanDuration),
    Exponential(HumanDuration),
}

impl<'de> Deserialize<'de> for ThinkSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            uniform: Option<[HumanDuration; 2]>,
            exponential: Option<HumanDuration>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ThinkSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a duration such as "1s", { uniform = ["1s", "3s"] } or { exponential = "2s" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ThinkSpec, E> {
                v.parse().map(ThinkSpec::Fixed).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ThinkSpec, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (t.uniform, t.exponential) {
                    (Some([lo, hi]), None) => Ok(ThinkSpec::Uniform(lo, hi)),
                    (None, Some(mean)) => Ok(ThinkSpec::Exponential(mean)),
                    _ => Err(de::Error::custom(
                        "give exactly one of `uniform` or `exponential`; write it like { uniform = [\"1s\", \"3s\"] }",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A threshold: `"p99 < 300ms"`, or `{ expr = "error_rate < 0.1", abort_after = "10s" }` to
/// end the run early when it fails over the last `abort_after` of traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdSpec {
    pub expr: String,
    pub abort_after: Option<HumanDuration>,
}

impl<'de> Deserialize<'de> for ThresholdSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            expr: String,
            abort_after: Option<HumanDuration>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ThresholdSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a threshold such as "p99 < 300ms", or { expr = "...", abort_after = "10s" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ThresholdSpec, E> {
                Ok(ThresholdSpec {
                    expr: v.to_owned(),
                    abort_after: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ThresholdSpec, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ThresholdSpec {
                    expr: t.expr,
                    abort_after: t.abort_after,
                })
            }
        }
        d.deserialize_any(V)
    }
}
