//! The `reprise` command: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything is created: what the process writes is its user's alone.
    reprise::files::private_umask();
    reprise::cli::run(reprise::cli::Cli::parse())
}
