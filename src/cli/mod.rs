//! Command-line parsing, logging setup and exit codes. Each command family lives in its own
//! module and only calls the library; this module decides which one runs and how its failure
//! maps to an exit code.

mod adopt;
mod config;
mod conflicts;
mod daemon;
mod demo;
mod history;
mod local;
mod migrate;
mod progress;
mod status;
mod sync;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sharecache::config::ConfigError;
use sharecache::{Config, ErrorKind};

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
    /// Only errors, and no progress bars
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
    /// Show the state, pending writes, last sync, conflicts, and debug details
    ///
    /// The debug section gives the cache and remote paths and sizes, whether the share answers
    /// now (asked with a 2 s timeout), and whether a sync thread or daemon runs for this cache.
    /// Reads local files only: it never creates a cache.
    #[command(after_help = EXIT_CODES)]
    Status {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the local cache from the remote (pending writes are pushed first)
    ///
    /// If pending writes cannot be pushed (e.g. offline), refuses and keeps them, unless
    /// --discard-pending is given: then they are exported to a file (named in the output) and
    /// the cache is rebuilt anyway.
    #[command(after_help = EXIT_CODES)]
    Clear {
        /// If pending writes cannot be pushed, export them to a file and clear anyway
        #[arg(long)]
        discard_pending: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// List recent sync runs, newest first
    #[command(after_help = EXIT_CODES)]
    History {
        /// How many runs to show
        #[arg(long, short = 'n', default_value_t = 20, value_name = "N")]
        limit: usize,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
    },
    /// List the conflict log (every losing version is kept), or show or restore one entry
    #[command(after_help = EXIT_CODES, args_conflicts_with_subcommands = true)]
    Conflicts {
        #[command(subcommand)]
        action: Option<conflicts::Action>,
        /// How many conflicts to list
        #[arg(long, short = 'n', default_value_t = 20, value_name = "N")]
        limit: usize,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Show the configuration in force, or change one setting in the config file
    #[command(after_help = EXIT_CODES)]
    Config {
        #[command(subcommand)]
        action: config::Action,
    },
    /// Declare the remote's content authoritative, after restoring it from a backup to roll back
    ///
    /// Without this, a client that finds the remote restored from a backup pushes its newer
    /// versions again (nothing acknowledged is lost). After it, every client takes the remote's
    /// rows instead and keeps its own newer versions in the conflict log (`sharecache conflicts`,
    /// restorable). To roll back: stop the apps, restore the file, run this, start the apps.
    /// Pass the database file to declare a backup authoritative before copying it in.
    #[command(name = "accept-restore", after_help = EXIT_CODES)]
    AcceptRestore {
        /// The database to declare [default: database.path from the config]
        #[arg(value_name = "DATABASE")]
        database: Option<PathBuf>,
    },
    /// Run the sync loop in the foreground until Ctrl-C or SIGTERM
    ///
    /// For apps that are not written in Rust and open the cache file themselves: syncs every
    /// sync_interval, applies edits of the config file within 2 s, logs each sync run, and on
    /// Ctrl-C or SIGTERM pushes pending writes (within sync.shutdown_timeout) and exits 0.
    #[command(after_help = EXIT_CODES)]
    Daemon,
    /// Push the pending writes of caches made for another path of this database to this path
    ///
    /// For a database that moved while its old path still holds a copy of it: the first open
    /// under the new path refuses to guess whether the new path is the same database or a copy
    /// (a test environment), and says so. `adopt` is the admin's answer "it moved": every cache
    /// in the cache directory made from the same database (its identity) under another path
    /// pushes its pending writes to the configured path. If the new path is a copy, do not adopt:
    /// sync the old cache to its own path instead.
    #[command(after_help = EXIT_CODES)]
    Adopt {
        /// Print what was pushed as JSON
        #[arg(long)]
        json: bool,
    },
    /// Move the database on the share to a PostgreSQL server, keeping every cache's history
    ///
    /// Copies the synced tables (keys, rows, constant defaults) into database.schema on the
    /// server, with sharecache's own state: the identity, the change log and its revisions, the
    /// client registry, the conflict log. Then point database.path at the server on every desk:
    /// each makes its cache from the server, and a cache still holding writes for the share is
    /// refused until `sharecache adopt` pushes them to the server. Stop the apps first (the share is read in one
    /// transaction, which keeps its writers waiting); refused if the server already holds a
    /// sharecache remote or one of the tables.
    #[command(name = "migrate-remote", after_help = EXIT_CODES)]
    MigrateRemote {
        /// The server: postgres://user[:password]@host[:port]/database (the password may come
        /// from PGPASSWORD instead)
        #[arg(long)]
        to: String,
        /// Print what was copied as JSON
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

/// A failure with its own exit code, for refusals the library does not classify.
#[derive(Debug)]
pub struct Failure {
    /// The exit code (see [`EXIT_CODES`]).
    pub code: u8,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A failure exiting with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

fn init_logging(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose, &cli.command) {
        (true, _, _) => "error",
        // The daemon's job is to say what it does: one line per sync run (its own), reloads
        // and warnings; the engine's per-sync lines would repeat them.
        (false, 0, Command::Daemon) => {
            "info,sharecache::sync=warn,sharecache::sync::snapshot=info,sharecache::handle::worker=info"
        }
        (false, 0, _) => "warn",
        (false, 1, _) => "info",
        (false, _, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The config file the user pointed at.
fn config_path(cli: &Cli) -> PathBuf {
    Config::locate(cli.config.as_deref())
}

/// Loads the config the user pointed at.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(&config_path(cli))?)
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(f) = e.downcast_ref::<Failure>() {
        return f.code;
    }
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
    match e.downcast_ref::<ConfigError>() {
        // `config set nonsense 1` is a usage error, not a broken config file.
        Some(ConfigError::UnknownSetting { .. }) => 2,
        Some(_) => 3,
        None => 1,
    }
}

/// The error and its chain of causes, each said once: the library's messages already name
/// their cause ("cache …: held by another program (database is locked)"), and the typed
/// `source()` behind them would only repeat it.
fn report(e: &anyhow::Error) -> String {
    let mut said = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !said.contains(&cause) {
            said.push_str(": ");
            said.push_str(&cause);
        }
    }
    said
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Daemon) {
        default_sigpipe();
    }
    init_logging(&cli);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sharecache: error: {}", report(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`sharecache status | head -1`) makes
/// `println!` panic. A command whose reader went away should end quietly instead, as other
/// Unix tools do: restore the default action. Not for `daemon`: losing the reader of its log
/// must not stop the syncs.
fn default_sigpipe() {
    sharecache::platform::default_sigpipe();
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let bars = progress::Bars::new(cli.quiet);
    match &cli.command {
        Command::Sync { json } => sync::sync(load_config(cli)?, bars, *json),
        Command::Status { json } => status::run(&load_config(cli)?, *json),
        Command::Clear {
            discard_pending,
            json,
        } => sync::clear(load_config(cli)?, bars, *discard_pending, *json),
        Command::History { limit, json } => history::run(&load_config(cli)?, *limit, *json),
        Command::Conflicts {
            action,
            limit,
            json,
        } => conflicts::run(load_config(cli)?, action.as_ref(), *limit, *json, bars),
        Command::Config { action } => config::run(&config_path(cli), action),
        Command::AcceptRestore { database } => {
            sync::accept_restore(&load_config(cli)?, database.as_deref())
        }
        Command::Daemon => daemon::run(load_config(cli)?),
        Command::Adopt { json } => adopt::run(&load_config(cli)?, *json),
        Command::MigrateRemote { to, json } => migrate::run(&load_config(cli)?, to, *json),
        Command::Demo { dir } => demo::run(dir),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_the_message_already_names_is_said_once() {
        let e = anyhow::Error::new(std::io::Error::other("database is locked"))
            .context("cache /c.db: held by another program (database is locked)");
        assert_eq!(
            super::report(&e),
            "cache /c.db: held by another program (database is locked)"
        );
        let e = anyhow::Error::new(std::io::Error::other("gone")).context("cannot read");
        assert_eq!(super::report(&e), "cannot read: gone");
    }
}
