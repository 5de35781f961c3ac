//! The loop: keys, data and signals in, frames out. Ticks and frames run at rates of their
//! own: each tick drains the source and moves the clock; a frame is drawn only when something
//! changed, and at most once per frame interval, so an idle dashboard costs next to nothing.

use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_util::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, MissedTickBehavior};

use crate::Error;
use crate::model::Model;
use crate::source::{Feed, Source};
use crate::terminal::Guard;
use crate::update::{Command, Msg, Outcome, update};
use crate::views::view;

/// How often the loop looks at the source and its clock, and how often it may draw.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub tick: Duration,
    pub frame: Duration,
}

impl Default for Rates {
    /// Four ticks a second (data comes once a second; a replay moves smoothly enough), and at
    /// most 30 frames a second (keys feel immediate).
    fn default() -> Self {
        Rates {
            tick: Duration::from_millis(250),
            frame: Duration::from_millis(33),
        }
    }
}

/// Run the dashboard on this terminal until the user quits or a signal asks it to stop.
pub async fn run(source: Box<dyn Source>, model: Model, rates: Rates) -> Result<(), Error> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(Error::NotATerminal);
    }
    run_until(source, model, rates, std::future::pending()).await
}

/// Run the dashboard until the user quits, a signal asks it to stop, or `stop` resolves (the
/// scenario runner's run is over). The caller has made sure there is a terminal (the runner
/// sends its stdout to a log meanwhile).
pub async fn run_until(
    mut source: Box<dyn Source>,
    mut model: Model,
    rates: Rates,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(stop);
    let mut guard = Guard::enter()?;
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(rates.tick);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let size = guard.terminal.size()?;
    update(
        &mut model,
        Msg::Resize {
            width: size.width,
            height: size.height,
        },
    );
    let mut last_frame: Option<Instant> = None;
    let mut next_frame = Some(Instant::now());
    loop {
        let due = async {
            match next_frame {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let mut outcome = Outcome::default();
        tokio::select! {
            _ = due => {
                guard.terminal.draw(|f| view(&model, f))?;
                last_frame = Some(Instant::now());
                next_frame = None;
                continue;
            }
            _ = tick.tick() => {
                for feed in source.poll() {
                    outcome.redraw |= update(&mut model, Msg::Feed(feed)).redraw;
                }
            }
            ev = keys.next() => match ev {
                Some(Ok(TermEvent::Key(k))) if k.kind == KeyEventKind::Press => outcome = update(&mut model, Msg::Key(k)),
                Some(Ok(TermEvent::Resize(width, height))) => outcome = update(&mut model, Msg::Resize { width, height }),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                // The terminal is gone.
                None => break,
            },
            _ = &mut stop => break,
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => break,
        }
        match outcome.command.take() {
            Some(Command::Quit) => break,
            Some(Command::Control(c)) => {
                if let Err(message) = source.control(c) {
                    update(&mut model, Msg::Feed(Feed::Done { ok: false, message }));
                }
                // Show where the control went at once, not at the next tick.
                for feed in source.poll() {
                    update(&mut model, Msg::Feed(feed));
                }
            }
            Some(Command::Fault(action)) => {
                if let Err(message) = source.fault(action) {
                    update(&mut model, Msg::Feed(Feed::Done { ok: false, message }));
                }
            }
            None => {}
        }
        if outcome.redraw && next_frame.is_none() {
            let earliest = last_frame.map_or_else(Instant::now, |t| t + rates.frame);
            next_frame = Some(earliest.max(Instant::now()));
        }
    }
    drop(guard);
    Ok(())
}
