//! `ballast-sidecar --config sidecar.toml`: the deployable sidecar.

use std::path::PathBuf;
use std::process::ExitCode;

use ballast_sidecar::{EXIT_CONFIG, config, sidecar};

const USAGE: &str = "usage: ballast-sidecar --config FILE [--check]

  --config FILE   the sidecar's TOML config
  --check         validate the config and exit (0 valid, 78 invalid)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut path, mut check) = (None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = args.next().map(PathBuf::from),
            "--check" => check = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--version" | "-V" => {
                println!("ballast-sidecar {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("--config is required\n{USAGE}");
        return ExitCode::from(2);
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BALLAST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match config::load_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    raise_fd_limit();
    if check {
        println!(
            "{}: ok ({} routes, {} clusters)",
            path.display(),
            config.routes.len(),
            config.clusters.len()
        );
        return ExitCode::SUCCESS;
    }
    match sidecar::run(&path, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ballast-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raise the open-files soft limit to the hard limit: every connection is a descriptor, and
/// the common default soft limit (1024) would cap max_connections far below its default.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
