//! The `reprise` command: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    reprise::cli::run(reprise::cli::Cli::parse())
}
