//! Load profiles: TOML as written ([`spec::LoadProfile`]) to a checked [`Profile`], every
//! problem reported at once with file:line:column, the field and a fix.
//!
//! Loading is two phases, as for the sidecar's config: [`parse`] reads the TOML item by item
//! into the spec structs, then [`check`] validates values, compiles templates, reads data
//! files and builds the typed profile.

mod check;
mod parse;
pub mod spec;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method};
use rand::Rng;
use rand_distr::Distribution;
use url::Url;

use crate::data::DataSet;
use crate::error::{ProfileError, ProfileErrors};
use crate::shape::Shape;
use crate::template::Template;
use crate::threshold::Threshold;

/// A checked load profile, ready to [`crate::run`].
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// Users are spread over these round robin (user N gets `base_urls[N % len]`).
    pub base_urls: Vec<Url>,
    /// Per request, to the end of the answer's body.
    pub timeout: Duration,
    /// A cookie jar per user (a client per user); otherwise users share one client.
    pub cookies: bool,
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub http2: bool,
    pub shape: Shape,
    pub scenarios: Vec<Scenario>,
    pub thresholds: Vec<Threshold>,
    /// Every transaction (logins too), indexed by [`Transaction::id`].
    pub transactions: Vec<Arc<Transaction>>,
    /// Per-user variable names; a user's values are in the same order.
    pub(crate) variables: Vec<String>,
    pub(crate) user_variables: Vec<UserVariable>,
    pub(crate) data: Vec<Arc<DataSet>>,
}

/// A group of transactions run in order by the users it is given (closed model), or drawn
/// from by weight (open model).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub weight: u64,
    /// Run once by each user before its first transaction.
    pub login: Option<Arc<Transaction>>,
    pub transactions: Vec<Arc<Transaction>>,
}

#[derive(Debug)]
pub struct Transaction {
    pub id: usize,
    pub name: String,
    pub method: Method,
    pub path: Template,
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Body,
    /// Statuses that count as success; `None`: any below 400.
    pub expect: Option<Vec<u16>>,
    pub think: Option<Think>,
    /// Closed model: runs this many times in a row in each pass of its scenario. Open model:
    /// its share of its scenario's requests.
    pub weight: u64,
    pub captures: Vec<Capture>,
}

#[derive(Debug, Clone)]
pub enum Body {
    None,
    /// A file sent as it is.
    Bytes(Bytes),
    Template(Template),
}

/// Think time after a transaction, closed model only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Think {
    Fixed(Duration),
    Uniform(Duration, Duration),
    /// Exponentially distributed with this mean (Poisson-like pauses).
    Exponential(Duration),
}

impl Think {
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Think::Fixed(d) => d,
            Think::Uniform(lo, hi) if lo < hi => rng.random_range(lo..=hi),
            Think::Uniform(lo, _) => lo,
            Think::Exponential(mean) => {
                let exp = rand_distr::Exp::new(1.0 / mean.as_secs_f64().max(1e-9)).expect("positive rate");
                Duration::from_secs_f64(exp.sample(rng).min(3600.0))
            }
        }
    }
}

/// A value taken from an answer into a per-user variable.
#[derive(Debug, Clone)]
pub struct Capture {
    pub variable: usize,
    pub from: CaptureFrom,
}

#[derive(Debug, Clone)]
pub enum CaptureFrom {
    /// A JSON pointer into the body (`/token`); strings are taken without their quotes.
    Json(String),
    Header(HeaderName),
}

/// A variable set once per user from a template.
#[derive(Debug, Clone)]
pub(crate) struct UserVariable {
    pub slot: usize,
    /// `None` for the profile's own variables; else the scenario declaring it.
    pub scenario: Option<usize>,
    pub template: Template,
}

impl Profile {
    /// Every transaction's name, by id.
    pub fn transaction_names(&self) -> Vec<&str> {
        self.transactions.iter().map(|t| t.name.as_str()).collect()
    }
}

/// Read and check a profile file.
pub fn load_file(path: &Path) -> Result<Profile, ProfileErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ProfileErrors::new(
            &name,
            "",
            vec![
                ProfileError::new("", None, format!("cannot read the file: {e}"))
                    .fix("check the path and its permissions"),
            ],
        )
    })?;
    load_str(&text, &name)
}

/// Check a profile given as text; `file` names it in messages and locates data and body
/// files (relative to its folder).
pub fn load_str(text: &str, file: &str) -> Result<Profile, ProfileErrors> {
    load(text, file, None)
}

/// The profile in the `[section]` table of a larger file (a scenario's `[load]`): positions
/// are in that file and field paths start with `section.`.
pub fn load_section(text: &str, file: &str, section: &str) -> Result<Profile, ProfileErrors> {
    load(text, file, Some(section))
}

fn load(text: &str, file: &str, section: Option<&str>) -> Result<Profile, ProfileErrors> {
    let mut errors = Vec::new();
    let base_dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let profile = parse::parse(text, section, &mut errors).and_then(|p| check::check(p, base_dir, &mut errors));
    match profile {
        Some(p) if errors.is_empty() => Ok(p),
        _ => Err(ProfileErrors::new(file, text, errors)),
    }
}
