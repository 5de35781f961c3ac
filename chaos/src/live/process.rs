//! Processes an experiment acts on: those the scenario runner spawned, registered by name as
//! [`Managed`] (they can be restarted), and any other named by a pid file (signals only).

use futures_util::future::BoxFuture;

use crate::action::Signal;

/// A process someone else owns and can restart: the scenario runner's spawned demo upstream,
/// sidecar or endpoint.
pub trait Managed: Send + Sync {
    /// Its pid while it runs.
    fn pid(&self) -> Option<u32>;
    /// Start it again (ending it first if it still runs); its new pid.
    fn restart(&self) -> BoxFuture<'_, Result<u32, String>>;
}

/// The pid written in a pid file (the first word, as daemons write it).
pub fn read_pid_file(path: &str) -> Result<u32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("pid file {path}: {e}"))?;
    let word = text.split_whitespace().next().unwrap_or_default();
    match word.parse::<u32>() {
        Ok(pid) if pid > 1 && pid <= i32::MAX as u32 => Ok(pid),
        _ => Err(format!("pid file {path}: {word:?} is not a process id")),
    }
}

/// Send `signal` to `pid`.
pub fn send(pid: u32, signal: Signal) -> Result<(), String> {
    // SAFETY: kill(2) takes plain integers; a pid above 1 names one process, never a group.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal.number()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} to pid {pid}: {}",
            signal.name(),
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_hold_one_process_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        std::fs::write(&path, "4242\n").unwrap();
        assert_eq!(read_pid_file(path.to_str().unwrap()), Ok(4242));
        for bad in ["", "0", "1", "-3", "abc"] {
            std::fs::write(&path, bad).unwrap();
            assert!(read_pid_file(path.to_str().unwrap()).is_err(), "{bad:?}");
        }
        assert!(
            read_pid_file("/nonexistent/x.pid")
                .unwrap_err()
                .contains("No such file")
        );
    }
}
