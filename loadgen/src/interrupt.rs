//! Ctrl-C in a process that runs goose.
//!
//! goose sets a process-wide SIGINT handler (the `ctrlc` crate) when an attack starts. It
//! replaces any handler set before it, tokio's included, and a Ctrl-C that comes while
//! goose's killswitch is set (a run being stopped, or a second Ctrl-C) exits the process on
//! the spot: a scenario's rollbacks would not run and the processes it started would be left
//! behind. `ctrlc` takes one handler per process, so this module sets ours first (on the first
//! [`ctrl_c`] or run); goose's then fails, which goose tolerates, and every Ctrl-C comes here.
//! Each one stops the load in progress, as goose's first would, and wakes every [`ctrl_c`]
//! waiting; none ends the process.

use std::sync::OnceLock;

use tokio::sync::watch;

/// Ctrl-Cs so far; `None` when another `ctrlc` handler was set before ours.
static PRESSES: OnceLock<Option<watch::Sender<u64>>> = OnceLock::new();

/// Take SIGINT for this process before goose does (again: no effect); false if a `ctrlc`
/// handler of someone else's was there first.
pub fn install() -> bool {
    presses().is_some()
}

fn presses() -> Option<&'static watch::Sender<u64>> {
    PRESSES
        .get_or_init(|| {
            let (presses, _) = watch::channel(0);
            let count = presses.clone();
            ctrlc::set_handler(move || {
                goose::trigger_killswitch("Ctrl-C");
                count.send_modify(|n| *n += 1);
            })
            .ok()
            .map(|()| presses)
        })
        .as_ref()
}

/// Resolves at the next Ctrl-C after its first poll (tokio's `ctrl_c` if ours could not be
/// set).
pub async fn ctrl_c() {
    match presses() {
        Some(presses) => {
            let mut seen = presses.subscribe();
            let _ = seen.changed().await;
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
