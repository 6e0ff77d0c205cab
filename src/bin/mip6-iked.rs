//! mip6-iked: the IKEv2 key manager for Mobile IPv6.
//!
//! `mip6-iked --config FILE` runs the daemon; `--check` validates the configuration and exits;
//! `mip6-iked demo` runs a home agent and a mobile node in one process over loopback.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mip6_ike::control::ControlServer;
use mip6_ike::daemon::{self, Control};
use mip6_ike::policy;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "mip6-iked",
    version,
    about = "IKEv2 key manager for Mobile IPv6 (RFC 7296, RFC 4877)"
)]
struct Cli {
    /// The global configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration (global file and every user file), print a summary and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a home agent and a mobile node in this process over loopback UDP (no root, no
    /// configuration) and show the SAs they negotiate.
    Demo,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::Demo) = cli.command {
        return demo();
    }
    let Some(path) = cli.config else {
        eprintln!("mip6-iked: give --config FILE (or run `mip6-iked demo`); see --help");
        return ExitCode::from(2);
    };
    if cli.check {
        return match policy::load(&path) {
            Ok(cfg) => {
                print!("{}", cfg.summary());
                println!("configuration OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        };
    }
    init_logging();
    let cfg = match policy::load(&path) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(1);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let kernel = match daemon::make_kernel(&cfg) {
            Ok(k) => k,
            Err(e) => {
                error!("{e}");
                return ExitCode::from(1);
            }
        };
        let (tx, rx) = mpsc::channel(16);
        info!(config = %path.display(), role = cfg.role.name(), "starting");
        let control = cfg.control.clone();
        let d = match daemon::Daemon::bind(cfg, kernel) {
            Ok(d) => d,
            Err(e) => {
                error!("{e}");
                return ExitCode::from(1);
            }
        };
        // The control socket shares the daemon's channel: a reload through it takes the
        // SIGHUP path.
        let server = if control.enabled {
            match ControlServer::bind(&control) {
                Ok(s) => Some(s.serve(d.handle(tx.clone()))),
                Err(e) => {
                    error!("{e}");
                    return ExitCode::from(1);
                }
            }
        } else {
            None
        };
        if let Err(e) = spawn_signals(tx) {
            error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
        let r = d.run(rx).await;
        // The server sees the channel close, stops and removes the socket file.
        if let Some(server) = server {
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
        match r {
            Ok(_) => {
                info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                error!("{e}");
                ExitCode::from(1)
            }
        }
    })
}

/// SIGTERM/SIGINT -> Shutdown, SIGHUP -> Reload.
fn spawn_signals(tx: mpsc::Sender<Control>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                _ = term.recv() => Control::Shutdown,
                _ = int.recv() => Control::Shutdown,
                _ = hup.recv() => Control::Reload,
            };
            let stop = matches!(c, Control::Shutdown);
            if tx.send(c).await.is_err() || stop {
                return;
            }
        }
    });
    Ok(())
}

fn demo() -> ExitCode {
    // Quiet by default: the summary is the output. RUST_LOG=info shows the daemons' logs.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(daemon::demo::run_demo(Duration::from_secs(5))) {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}
