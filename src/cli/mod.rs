//! Command-line parsing, logging setup and exit codes.

mod demo;
mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sharecache::{Cache, Config, ErrorKind};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure
  2  bad command-line arguments
  3  bad configuration
  4  the share is unreachable (offline); pending writes are kept
  5  the remote stayed locked, or another sync of this cache is running
  6  the remote database is unusable (not SQLite, corrupt, a different file, WAL in use)
  7  the local cache is unusable (corrupt, disk full, directory not writable)";

/// A local SQLite cache for a SQLite database on a slow network share.
#[derive(Debug, Parser)]
#[command(name = "sharecache", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Config file [default: $SHARECACHE_CONFIG, else ./config.yaml]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sync now: push pending local writes, then pull remote changes
    #[command(after_help = EXIT_CODES)]
    Sync {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show the cache's state, pending writes, last sync and what is not synced
    #[command(after_help = EXIT_CODES)]
    Status {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Run the whole flow on a demo share in ./sharecache-demo and print what happens
    Demo {
        /// Where to create the demo files
        #[arg(long, default_value = "sharecache-demo")]
        dir: PathBuf,
    },
}

fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads the config the user pointed at.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let path = Config::locate(cli.config.as_deref());
    Ok(Config::load(&path)?)
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(e) = e.downcast_ref::<sharecache::Error>() {
        return match e.kind() {
            ErrorKind::Config => 3,
            ErrorKind::Offline => 4,
            ErrorKind::Locked => 5,
            ErrorKind::Remote => 6,
            ErrorKind::Local => 7,
            ErrorKind::Other => 1,
        };
    }
    if e.downcast_ref::<sharecache::config::ConfigError>()
        .is_some()
    {
        return 3;
    }
    1
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sharecache: error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Sync { json } => {
            let config = load_config(cli)?;
            let cache =
                Cache::open_with(config, sharecache::OpenOptions::default().background(false))?;
            let report = cache
                .sync_now()
                .context("sync failed; every pending write is still pending")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                show::report(&cache, &report);
            }
            Ok(())
        }
        Command::Status { json } => {
            let config = load_config(cli)?;
            let status = show::status_of(&config)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                show::status(&status);
            }
            Ok(())
        }
        Command::Demo { dir } => demo::run(dir),
    }
}
