//! What a goose user does in each model, and how one request is sent and measured.
//!
//! goose calls a transaction function over and over for each of its users. Ours:
//! - closed model: send the transaction's request now, then think;
//! - open model: take the next slot of the shared schedule, wait for its time, draw a
//!   transaction by weight and send it; the latency counts from the slot's time, however late
//!   the user got to it.
//!
//! A user's own state (its number, variables, random generator) lives in goose's session data.

use std::sync::Arc;
use std::time::Duration;

use ballast_model::ErrorClass;
use ballast_model::error_class::ERROR_HEADER;
use ballast_model::load::Failure;
use goose::goose::{GooseRequest, GooseUser, TransactionResult};
use http::{HeaderMap, HeaderValue};
use rand::SeedableRng;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use crate::profile::{Body, CaptureFrom, Transaction};
use crate::shared::{Record, Shared};
use crate::template::Ctx;

/// A user's own state, kept in goose's session data.
#[derive(Clone)]
struct UserState {
    number: usize,
    base: String,
    vars: Vec<String>,
    rng: SmallRng,
    /// Scratch: the data rows of the request being built.
    rows: Vec<Option<usize>>,
}

/// Give a user its number, variables and client on its first call.
fn ensure_user(shared: &Shared, user: &mut GooseUser, scenario: Option<usize>) {
    if user.get_session_data::<UserState>().is_some() {
        return;
    }
    let p = &shared.profile;
    let number = shared.next_user.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let mut vars = vec![String::new(); p.variables.len()];
    let mut rows = vec![None; p.data.len()];
    for v in &p.user_variables {
        // Closed model: the profile's variables and the user's scenario's; open: all.
        if scenario.is_some() && v.scenario.is_some() && v.scenario != scenario {
            continue;
        }
        rows.iter_mut().for_each(|r| *r = None);
        let seq = shared.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let value = v.template.render(&mut Ctx {
            seq,
            user: number,
            vars: &[],
            data: &p.data,
            rows: &mut rows,
            rng: &mut rng,
        });
        vars[v.slot] = value;
    }
    let base = p.base_urls[number % p.base_urls.len()]
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    if p.cookies {
        // A jar of its own needs a client of its own.
        if let Ok(c) = crate::client::build(p, true) {
            user.client = c;
        }
    } else {
        user.client = shared.client.clone();
    }
    user.set_session_data(UserState {
        number,
        base,
        vars,
        rng,
        rows,
    });
}

/// goose keeps calling a user's transaction until it tells the user to exit; once we stop,
/// return after a pause instead of at once, so stopped users do not spin.
async fn idle(shared: &Shared) {
    let _ = tokio::time::timeout(Duration::from_millis(100), shared.stopping()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Closed model: one pass of a transaction (its request, then its think time).
pub(crate) async fn closed(
    shared: Arc<Shared>,
    scenario: usize,
    tx: Arc<Transaction>,
    user: &mut GooseUser,
) -> TransactionResult {
    if shared.stopped() {
        idle(&shared).await;
        return Ok(());
    }
    ensure_user(&shared, user, Some(scenario));
    send(&shared, user, &tx, Instant::now()).await;
    if let Some(think) = tx.think {
        let pause = think.sample(&mut state(user).rng);
        shared.sleep_until(Instant::now() + pause).await;
    }
    Ok(())
}

/// A login: once per user, before its first transaction.
pub(crate) async fn login(
    shared: Arc<Shared>,
    scenario: Option<usize>,
    tx: Arc<Transaction>,
    user: &mut GooseUser,
) -> TransactionResult {
    if shared.stopped() {
        return Ok(());
    }
    ensure_user(&shared, user, scenario);
    send(&shared, user, &tx, Instant::now()).await;
    Ok(())
}

/// Open model: the next request of the schedule.
pub(crate) async fn arrival(shared: Arc<Shared>, user: &mut GooseUser) -> TransactionResult {
    ensure_user(&shared, user, None);
    let schedule = shared.schedule.as_ref().expect("open model has a schedule");
    use std::sync::atomic::Ordering;
    shared.pending.fetch_add(1, Ordering::Relaxed);
    let Some((_, due)) = schedule.next() else {
        shared.pending.fetch_sub(1, Ordering::Relaxed);
        idle(&shared).await;
        return Ok(());
    };
    if shared.sleep_until(due).await {
        let (weights, txs) = shared.draw.as_ref().expect("open model has a draw");
        let tx = txs[weights.sample(&mut state(user).rng)].clone();
        send(&shared, user, &tx, due).await;
    }
    shared.pending.fetch_sub(1, Ordering::Relaxed);
    Ok(())
}

fn state(user: &mut GooseUser) -> &mut UserState {
    user.get_session_data_mut::<UserState>()
        .expect("users are set up on their first call")
}

/// Build, send and measure one request; record it; apply its captures.
async fn send(shared: &Shared, user: &mut GooseUser, tx: &Transaction, intended: Instant) {
    let p = &shared.profile;
    let built = {
        let UserState {
            number,
            base,
            vars,
            rng,
            rows,
        } = state(user);
        rows.iter_mut().for_each(|r| *r = None);
        let mut ctx = Ctx {
            seq: shared.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            user: *number,
            vars,
            data: &p.data,
            rows,
            rng,
        };
        let mut url = String::with_capacity(base.len() + tx.path.source().len() + 16);
        url.push_str(base);
        tx.path.render_into(&mut ctx, &mut url);
        let mut headers = HeaderMap::with_capacity(tx.headers.len());
        let mut bad_header = false;
        for (name, t) in &tx.headers {
            match HeaderValue::from_str(&t.render(&mut ctx)) {
                Ok(v) => {
                    headers.insert(name.clone(), v);
                }
                Err(_) => bad_header = true,
            }
        }
        let body = match &tx.body {
            Body::None => None,
            Body::Bytes(b) => Some(reqwest::Body::from(b.clone())),
            Body::Template(t) => Some(reqwest::Body::from(t.render(&mut ctx))),
        };
        (!bad_header).then_some((url, headers, body))
    };
    let start = Instant::now();
    let Some((url, headers, body)) = built else {
        // A header rendered to something no header may hold (a newline from a data file).
        let at = shared.since_start_us(start);
        shared.record(Record {
            tx: tx.id,
            intended_us: shared.since_start_us(intended),
            start_us: at,
            end_us: at,
            status: None,
            failure: Some(Failure::Class(ErrorClass::BadRequest)),
        });
        return;
    };
    let mut rb = user.client.request(tx.method.clone(), url).headers(headers);
    if let Some(body) = body {
        rb = rb.body(body);
    }
    let request = GooseRequest::builder()
        .set_request_builder(rb)
        .name(tx.name.as_str())
        .build();
    shared.in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let outcome = match user.request(request).await {
        Err(_) => Outcome::failed(Failure::Class(ErrorClass::BadRequest)),
        Ok(goose) => match goose.response {
            Ok(response) => read(response, tx).await,
            Err(e) => Outcome::failed(classify(&e)),
        },
    };
    let end = Instant::now();
    shared.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    if !outcome.captured.is_empty() {
        let vars = &mut state(user).vars;
        for (slot, value) in outcome.captured {
            vars[slot] = value;
        }
    }
    shared.record(Record {
        tx: tx.id,
        intended_us: shared.since_start_us(intended),
        start_us: shared.since_start_us(start),
        end_us: shared.since_start_us(end),
        status: outcome.status,
        failure: outcome.failure,
    });
}

struct Outcome {
    status: Option<u16>,
    failure: Option<Failure>,
    captured: Vec<(usize, String)>,
}

impl Outcome {
    fn failed(f: Failure) -> Self {
        Outcome {
            status: None,
            failure: Some(f),
            captured: Vec::new(),
        }
    }
}

/// Read the answer to its end (latency covers the body, as wrk's does) and judge it.
async fn read(mut response: reqwest::Response, tx: &Transaction) -> Outcome {
    let status = response.status().as_u16();
    let expected = match &tx.expect {
        Some(codes) => codes.contains(&status),
        None => status < 400,
    };
    let mut failure = (!expected).then(|| {
        response
            .headers()
            .get(ERROR_HEADER)
            .and_then(|v| v.to_str().ok()?.parse::<ErrorClass>().ok())
            .map_or(Failure::UnexpectedStatus, Failure::Class)
    });
    let mut captured = Vec::new();
    for c in &tx.captures {
        if let CaptureFrom::Header(h) = &c.from
            && let Some(v) = response.headers().get(h).and_then(|v| v.to_str().ok())
        {
            captured.push((c.variable, v.to_owned()));
        }
    }
    let wants_body = tx.captures.iter().any(|c| matches!(c.from, CaptureFrom::Json(_)));
    if wants_body {
        match response.bytes().await {
            Ok(body) => {
                let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
                for c in &tx.captures {
                    if let (CaptureFrom::Json(pointer), Some(json)) = (&c.from, &json)
                        && let Some(v) = json.pointer(pointer)
                    {
                        let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        captured.push((c.variable, text));
                    }
                }
            }
            Err(e) => failure = Some(classify(&e)),
        }
    } else {
        loop {
            match response.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    failure = Some(classify(&e));
                    break;
                }
            }
        }
    }
    Outcome {
        status: Some(status),
        failure,
        captured,
    }
}

/// Name a transport failure as the sidecar names its own.
pub(crate) fn classify(e: &reqwest::Error) -> Failure {
    use std::error::Error as _;
    use std::io::ErrorKind;
    let mut io_kind = None;
    let mut hyper_parse = false;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_parse() || h.is_parse_status() || h.is_parse_too_large())
        {
            hyper_parse = true;
        }
        source = s.source();
    }
    let class = if e.is_connect() {
        match io_kind {
            Some(ErrorKind::ConnectionRefused) => ErrorClass::ConnectRefused,
            Some(ErrorKind::TimedOut) => ErrorClass::ConnectTimeout,
            _ if e.is_timeout() => ErrorClass::ConnectTimeout,
            _ => ErrorClass::ConnectFailure,
        }
    } else if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_builder() {
        ErrorClass::BadRequest
    } else if hyper_parse || e.is_decode() || e.is_redirect() {
        ErrorClass::Protocol
    } else {
        // Closed, reset or aborted mid-exchange.
        ErrorClass::Reset
    };
    Failure::Class(class)
}
