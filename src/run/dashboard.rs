//! The dashboard during a run (`ballast-tui`), shown when stdout is a terminal and `--no-tui`
//! is not given. It is fed with the runner's own scrapes and events, so it shows exactly what
//! the run folder records (and `ballast tui --replay` shows it again later); fault actions
//! from it go to the sidecar's admin API as in `ballast tui`.
//!
//! While it shows, the runner's stdout and stderr (and whatever the load generator prints)
//! go to `run.log` in the run folder, so nothing stray lands on the screen; the dashboard
//! draws on the controlling terminal. Quitting it (q, Ctrl-C) interrupts the run as Ctrl-C
//! does without it: the load stops, rollbacks run, the files are written. When the run ends
//! by itself the dashboard closes and the verdict is printed. Without a controlling terminal,
//! or if the dashboard fails, the run goes on with the progress line.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use ballast_model::slo::SloSpec;
use ballast_tui::{Feed, Rates, Sidecar};
use tokio::sync::{mpsc, oneshot, watch};

pub struct Dashboard {
    feed: mpsc::Sender<Feed>,
    stop: Option<oneshot::Sender<()>>,
    /// Set when the run ends by itself, so the dashboard's end does not interrupt it.
    finishing: Arc<AtomicBool>,
    /// Set when the dashboard failed: the run goes on with the progress line.
    failed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), ballast_tui::Error>>>,
    /// The terminal's stdout and stderr while they point at the log.
    saved: Saved,
}

type Saved = Arc<Mutex<Option<(OwnedFd, OwnedFd)>>>;

/// Point file descriptor `fd` (1 or 2) at `to`.
fn redirect(fd: i32, to: &impl AsFd) -> std::io::Result<()> {
    // SAFETY: dup2 on descriptors this process owns; 1 and 2 stay open throughout.
    if unsafe { libc::dup2(to.as_fd().as_raw_fd(), fd) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Point stdout and stderr back at the terminal (once; later calls do nothing).
fn give_back(saved: &Saved) {
    if let Some((out, err)) = saved.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let _ = redirect(1, &out);
        let _ = redirect(2, &err);
    }
}

impl Dashboard {
    /// Show the dashboard of the sidecar named `sidecar` at `admin`; `cancel` interrupts the
    /// run when the user quits.
    pub fn start(
        sidecar: &str,
        admin: &str,
        token: Option<String>,
        slos: Vec<SloSpec>,
        log: &Path,
        cancel: Arc<watch::Sender<bool>>,
    ) -> anyhow::Result<Dashboard> {
        let sidecars = vec![Sidecar {
            name: sidecar.to_owned(),
            admin: admin.to_owned(),
        }];
        let (model, source, feed) = ballast_tui::fed(sidecars, token, slos)?;
        // It draws on the controlling terminal: without one, there is no dashboard.
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/tty")
            .context("no controlling terminal (/dev/tty)")?;
        let log = File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let saved: Saved = Arc::new(Mutex::new(Some((
            std::io::stdout().as_fd().try_clone_to_owned()?,
            std::io::stderr().as_fd().try_clone_to_owned()?,
        ))));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let finishing = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let (finished, fail, back) = (finishing.clone(), failed.clone(), saved.clone());
        let show = move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let stop = async {
                let _ = stop_rx.await;
            };
            let shown = rt.block_on(ballast_tui::app::run_until(
                Box::new(source),
                model,
                Rates::default(),
                stop,
            ));
            match &shown {
                Ok(()) if !finished.load(Ordering::SeqCst) => {
                    let _ = cancel.send(true);
                }
                Ok(()) => {}
                Err(e) => {
                    // The run goes on, with its output back on the terminal.
                    give_back(&back);
                    fail.store(true, Ordering::SeqCst);
                    eprintln!("ballast: the dashboard failed ({e}); the run goes on");
                }
            }
            shown
        };
        let thread = redirect(1, &log)
            .and_then(|_| redirect(2, &log))
            .and_then(|_| std::thread::Builder::new().name("dashboard".into()).spawn(show));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                give_back(&saved);
                return Err(anyhow::Error::from(e).context("cannot start the dashboard"));
            }
        };
        Ok(Dashboard {
            feed,
            stop: Some(stop_tx),
            finishing,
            failed,
            thread: Some(thread),
            saved,
        })
    }

    /// Whether it failed (and the run shows its progress line instead).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Pass data on; dropped when the dashboard lags far behind (it shows the next scrape).
    pub fn feed(&self, feed: Feed) {
        let _ = self.feed.try_send(feed);
    }

    /// Close it and give the terminal back to stdout and stderr; why it failed, if it did.
    pub fn finish(mut self) -> Option<String> {
        self.close()
    }

    fn close(&mut self) -> Option<String> {
        self.finishing.store(true, Ordering::SeqCst);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let shown = self.thread.take().map(|t| t.join());
        give_back(&self.saved);
        match shown {
            Some(Ok(Err(e))) => Some(format!("the dashboard failed: {e}")),
            Some(Err(_)) => Some("the dashboard panicked".to_owned()),
            _ => None,
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.close();
    }
}
