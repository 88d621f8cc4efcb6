//! The binary: parse, run, print the error chain to stderr, exit with the mapped code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use scalardb_verify::{app, cli::Cli, error::exit_code};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::OK
            });
        }
    };
    let stdout = std::io::stdout();
    let is_terminal = stdout.is_terminal();
    match app::run(cli, &mut stdout.lock(), is_terminal) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: failed to {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(error.exit_code())
        }
    }
}
