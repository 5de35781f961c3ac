//! The goose attack for a profile: configured in code (never from our process's arguments),
//! quiet (no telnet or WebSocket controller, no printed metrics, no metrics of its own: ours
//! come from the transactions), its scenarios and transactions built from the profile.
//!
//! - Closed model: one goose scenario per profile scenario (goose gives its users to the
//!   scenarios by weight), one goose transaction per profile transaction, in the order
//!   written; the stages become a goose test plan, or users, hatch rate and iterations.
//! - Open model: one goose scenario whose one transaction draws from the shared schedule, run
//!   by `max_users` users started at once; the run ends when the schedule is spent, so goose's
//!   plan only has to outlast it.

use std::sync::Arc;

use goose::GooseAttack;
use goose::config::GooseConfiguration;
use goose::config::{GooseDefault, GooseDefaultType};
use goose::goose::{Scenario, Transaction, TransactionFunction};

use crate::error::LoadError;
use crate::profile;
use crate::shape::Shape;
use crate::shared::Shared;
use crate::user;

fn goose_err(e: goose::GooseError) -> LoadError {
    LoadError::Goose(e.to_string())
}

pub(crate) fn build(shared: &Arc<Shared>) -> Result<GooseAttack, LoadError> {
    let p = &shared.profile;
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default()).map_err(goose_err)?;
    attack = *attack
        .set_default(GooseDefault::Host, p.base_urls[0].as_str())
        .map_err(goose_err)?;
    for flag in [
        GooseDefault::NoTelnet,
        GooseDefault::NoPrintMetrics,
        GooseDefault::NoMetrics,
    ] {
        attack = *attack.set_default(flag, true).map_err(goose_err)?;
    }
    attack = *attack.set_default(GooseDefault::Quiet, 1usize).map_err(goose_err)?;
    match &p.shape {
        Shape::Closed {
            stages,
            iterations: None,
        } => {
            attack = *attack
                .set_default(GooseDefault::TestPlan, Shape::goose_test_plan(stages).as_str())
                .map_err(goose_err)?;
        }
        Shape::Closed {
            stages,
            iterations: Some(n),
        } => {
            // The one ramp stage: `users` started over `users / hatch_rate` seconds.
            let users = stages[0].target as usize;
            let secs = stages[0].duration.as_secs_f64();
            let rate = if secs > 0.0 { users as f64 / secs } else { 1e6 };
            attack = *attack.set_default(GooseDefault::Users, users).map_err(goose_err)?;
            attack = *attack
                .set_default(GooseDefault::IncreaseRate, rate.to_string().as_str())
                .map_err(goose_err)?;
            attack = *attack
                .set_default(GooseDefault::Iterations, *n as usize)
                .map_err(goose_err)?;
        }
        Shape::Open { max_users, .. } => {
            // Our schedule ends the run; an hour past its end is only a backstop.
            let hold = p.shape.duration().as_secs() + 3600;
            attack = *attack
                .set_default(
                    GooseDefault::TestPlan,
                    format!("{max_users},0s;{max_users},{hold}s").as_str(),
                )
                .map_err(goose_err)?;
        }
    }
    // goose would build a client (and load TLS roots) for each user before the start; users
    // get ours on their first call, so give goose one shared client to hand out.
    attack = attack
        .set_client_builder_without_cookies(goose::client::GooseClientBuilder::new().without_cookies())
        .map_err(goose_err)?;

    match &p.shape {
        Shape::Closed { .. } => {
            for (i, s) in p.scenarios.iter().enumerate() {
                let mut scenario = Scenario::new(&s.name)
                    .set_weight(s.weight as usize)
                    .map_err(goose_err)?;
                if let Some(login) = &s.login {
                    scenario = scenario.register_transaction(login_transaction(shared, Some(i), login));
                }
                for (j, tx) in s.transactions.iter().enumerate() {
                    let (shared, tx2) = (shared.clone(), tx.clone());
                    let f: TransactionFunction =
                        Arc::new(move |u| Box::pin(user::closed(shared.clone(), i, tx2.clone(), u)));
                    let t = Transaction::new(f)
                        .set_name(&tx.name)
                        .set_weight(tx.weight as usize)
                        .map_err(goose_err)?
                        // In the order written: goose runs sequenced transactions in order,
                        // each repeated by its weight.
                        .set_sequence(j + 1);
                    scenario = scenario.register_transaction(t);
                }
                attack = attack.register_scenario(scenario);
            }
        }
        Shape::Open { .. } => {
            let mut scenario = Scenario::new("arrivals");
            if let Some(login) = p.scenarios.first().and_then(|s| s.login.as_ref()) {
                scenario = scenario.register_transaction(login_transaction(shared, None, login));
            }
            let shared = shared.clone();
            let f: TransactionFunction = Arc::new(move |u| Box::pin(user::arrival(shared.clone(), u)));
            attack = attack.register_scenario(scenario.register_transaction(Transaction::new(f).set_name("arrival")));
        }
    }
    Ok(attack)
}

fn login_transaction(shared: &Arc<Shared>, scenario: Option<usize>, login: &Arc<profile::Transaction>) -> Transaction {
    let (shared, tx) = (shared.clone(), login.clone());
    let f: TransactionFunction = Arc::new(move |u| Box::pin(user::login(shared.clone(), scenario, tx.clone(), u)));
    Transaction::new(f).set_name(&login.name).set_on_start()
}
