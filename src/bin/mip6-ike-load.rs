//! `mip6-ike-load`: an IKEv2 load generator (see `mip6_ike::load`). Drives our initiator engine
//! over UDP against any responder and prints handshakes/s and latency percentiles.

use clap::Parser;
use mip6_ike::load::{LoadArgs, run};

fn main() {
    let args = LoadArgs::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let quiet = args.quiet;
    match run(&args, |line| {
        if !quiet || line.starts_with("holding") {
            eprintln!("{line}");
        }
    }) {
        Ok(report) => {
            println!("{report}");
            std::process::exit(if report.failed == 0 { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("mip6-ike-load: {e}");
            std::process::exit(2);
        }
    }
}
