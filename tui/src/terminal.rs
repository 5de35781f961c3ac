//! The terminal: raw mode and the alternate screen while the dashboard runs, and put back as
//! it was on every way out: a normal exit, an error (the guard's drop), Ctrl-C (a key in raw
//! mode, handled as quit) and a panic (a hook that restores before the panic is printed, so
//! the message is readable).
//!
//! The dashboard draws on the controlling terminal (`/dev/tty`), not on stdout: the scenario
//! runner sends its own stdout and stderr (and whatever the load generator prints) to a log
//! while the dashboard shows, and nothing stray lands on the screen. Without a controlling
//! terminal it draws on a copy of stdout.

use std::fs::File;
use std::io::{Write, stdout};
use std::os::fd::AsFd;
use std::sync::{Mutex, Once};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

pub type Term = Terminal<CrosstermBackend<File>>;

/// Where the dashboard draws, kept for [`restore`] (which a panic may call from anywhere).
static SCREEN: Mutex<Option<File>> = Mutex::new(None);

/// The terminal in dashboard mode; restored when dropped.
pub struct Guard {
    pub terminal: Term,
}

/// The controlling terminal, else a copy of stdout.
fn screen() -> std::io::Result<File> {
    match std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        Ok(tty) => Ok(tty),
        Err(_) => Ok(File::from(stdout().as_fd().try_clone_to_owned()?)),
    }
}

impl Guard {
    pub fn enter() -> std::io::Result<Guard> {
        install_panic_hook();
        let mut screen = screen()?;
        *SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(screen.try_clone()?);
        enable_raw_mode()?;
        if let Err(e) = execute!(screen, EnterAlternateScreen, Hide) {
            restore();
            return Err(e);
        }
        let terminal = match Terminal::new(CrosstermBackend::new(screen)) {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(e);
            }
        };
        Ok(Guard { terminal })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leave raw mode and the alternate screen, show the cursor. Safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let mut screen = SCREEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = screen.as_mut() {
        let _ = execute!(s, LeaveAlternateScreen, Show);
        let _ = s.flush();
    }
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
