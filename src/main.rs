//! The `sharecache` command: a thin layer over the library. Errors are printed with their
//! cause chain and mapped to documented exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
