//! Ctrl-C in a process that runs goose.
//!
//! goose sets a process-wide SIGINT handler (the `ctrlc` crate) when an attack starts. It
//! replaces any handler set before it, tokio's included, and a Ctrl-C that comes while
//! goose's killswitch is set (a run being stopped, or a second Ctrl-C) exits the process on
//! the spot: a scenario's rollbacks would not run and the processes it started would be left
//! behind. `ctrlc` takes one handler per process (one `ctrlc`: goose's and ours must resolve
//! to the same major version, as Cargo.lock has them), so this module sets ours first (on the
//! first [`presses`] or run); goose's then fails, which goose tolerates, and every Ctrl-C
//! comes here. Each one stops the load in progress, as goose's first would, and counts for
//! every [`Presses`]; none ends the process: what a second one does is the caller's choice.

use std::sync::OnceLock;

use tokio::sync::watch;

/// Ctrl-Cs so far; `None` when another `ctrlc` handler was set before ours.
static PRESSES: OnceLock<Option<watch::Sender<u64>>> = OnceLock::new();

/// Take SIGINT for this process before goose does (again: no effect; none if a `ctrlc`
/// handler of someone else's was there first). Like goose's, ours replaces a handler tokio set
/// for SIGINT before it (that one then never fires); tokio's set after it still fire.
pub fn install() {
    counter();
}

fn counter() -> Option<&'static watch::Sender<u64>> {
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

/// The Ctrl-Cs that come after its creation, one [`Presses::next`] each, however fast they come.
pub struct Presses(Option<(watch::Receiver<u64>, u64)>);

/// Ctrl-Cs from now on (installing our handler first).
pub fn presses() -> Presses {
    Presses(counter().map(|count| {
        let seen = count.subscribe();
        let now = *seen.borrow();
        (seen, now)
    }))
}

impl Presses {
    /// The next Ctrl-C (tokio's `ctrl_c` if ours could not be set).
    pub async fn next(&mut self) {
        match &mut self.0 {
            Some((seen, counted)) => {
                let want = *counted + 1;
                let _ = seen.wait_for(|n| *n >= want).await;
                *counted = want;
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
