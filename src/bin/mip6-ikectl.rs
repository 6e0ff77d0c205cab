//! mip6-ikectl: the control CLI for mip6-iked. The control socket does not exist yet, so this
//! only knows its version and help; it will talk to the daemon once the socket protocol lands.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "mip6-ikectl",
    version,
    about = "Control CLI for mip6-iked (the daemon's control socket is not implemented yet)",
    after_help = "Nothing to control yet: use `mip6-iked --check --config FILE` to validate a \
                  configuration and `mip6-iked demo` to see a negotiation."
)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!(
        "mip6-ikectl {}: the control socket is not implemented yet; see --help",
        env!("CARGO_PKG_VERSION")
    );
}
