//! `sharecache conflicts`: the conflict log (every losing version is kept), one entry in full,
//! and restoring a losing version as a new local change. Listing and showing are read-only.

use clap::Subcommand;
use serde_json::{Map, Value, json};
use sharecache::{Config, Conflict};

use super::local::{self, Local};
use super::progress::Bars;
use super::{Failure, sync};

/// What to do with the conflict log.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Show one conflict with its losing row
    Show {
        /// The conflict's id (from `sharecache conflicts`)
        id: i64,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Make the losing version current again, as a new local change that reaches every client
    /// at the next sync
    Restore {
        /// The conflict's id (from `sharecache conflicts`)
        id: i64,
        /// Sync right away
        #[arg(long)]
        sync: bool,
    },
}

/// Runs `sharecache conflicts [show|restore]`.
pub fn run(
    config: Config,
    action: Option<&Action>,
    limit: usize,
    json: bool,
    bars: Bars,
) -> anyhow::Result<()> {
    match action {
        None => list(&config, limit, json),
        Some(Action::Show { id, json }) => show(&config, *id, *json),
        Some(Action::Restore { id, sync }) => restore(config, *id, *sync, bars),
    }
}

/// A conflict as JSON, with its key (an array of the key's values) and losing row as JSON
/// values rather than text.
fn to_json(c: &Conflict) -> Value {
    let parse = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| json!(text));
    let key = sharecache::sql::decode_key(&c.key).map_or_else(
        |_| json!(c.key),
        |values| Value::Array(values.iter().map(sharecache::sql::value_to_json).collect()),
    );
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("key".into(), key);
        o.insert(
            "loser_row".into(),
            c.loser_row.as_deref().map_or(Value::Null, parse),
        );
    }
    v
}

fn list(config: &Config, limit: usize, json: bool) -> anyhow::Result<()> {
    let (conflicts, me) = match local::open(config)? {
        Local::Cache { paths, conn } => (
            sharecache::conflicts::list(&conn, limit).map_err(local::sql_error(&paths.db))?,
            local::origin(&conn),
        ),
        Local::None(why) => {
            if json {
                println!("[]");
            }
            eprintln!("{why}");
            return Ok(());
        }
    };
    if json {
        let all: Vec<Value> = conflicts.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if conflicts.is_empty() {
        println!("no conflicts logged (as of this cache's last sync)");
        return Ok(());
    }
    for c in &conflicts {
        println!(
            "#{:<5} {}  {} {}  ({})",
            c.id, c.decided_at, c.table, c.key, c.reason
        );
        print_sides(c, me.as_deref());
    }
    println!(
        "\nthe losing row: `sharecache conflicts show ID`; bring it back: `sharecache conflicts restore ID`"
    );
    Ok(())
}

fn who(origin: &str, me: Option<&str>) -> String {
    if Some(origin) == me {
        format!("{origin} (this client)")
    } else {
        origin.to_string()
    }
}

fn print_sides(c: &Conflict, me: Option<&str>) {
    println!(
        "       winner {}  by {}",
        c.winner_stamp,
        who(&c.winner_origin, me)
    );
    println!(
        "       loser  {}  by {}  ({})",
        c.loser_stamp,
        who(&c.loser_origin, me),
        c.loser_op
    );
}

fn show(config: &Config, id: i64, json: bool) -> anyhow::Result<()> {
    let (conflict, me) = match local::open(config)? {
        Local::Cache { paths, conn } => (
            sharecache::conflicts::get(&conn, id).map_err(local::sql_error(&paths.db))?,
            local::origin(&conn),
        ),
        Local::None(why) => return Err(Failure::new(1, why).into()),
    };
    let Some(c) = conflict else {
        return Err(Failure::new(
            1,
            format!(
                "no conflict with id {id} in this cache's conflict log (`sharecache conflicts` \
                 lists them; `sharecache sync` fetches newer entries)"
            ),
        )
        .into());
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&to_json(&c))?);
        return Ok(());
    }
    println!(
        "conflict #{} in table {}, key {}, decided {} by {} ({})",
        c.id,
        c.table,
        c.key,
        c.decided_at,
        who(&c.decided_by, me.as_deref()),
        c.reason
    );
    print_sides(&c, me.as_deref());
    match c
        .loser_row
        .as_deref()
        .map(serde_json::from_str::<Map<String, Value>>)
    {
        None => println!("the losing version deleted the row"),
        Some(Ok(row)) => {
            println!("the losing row:");
            let width = row.keys().map(String::len).max().unwrap_or(0);
            for (column, value) in &row {
                println!("  {column:<width$}  {value}");
            }
        }
        Some(Err(_)) => println!("the losing row: {}", c.loser_row.as_deref().unwrap_or("")),
    }
    println!("bring it back: `sharecache conflicts restore {}`", c.id);
    Ok(())
}

fn restore(config: Config, id: i64, sync_now: bool, bars: Bars) -> anyhow::Result<()> {
    let cache = sync::open(config, bars)?;
    let c = cache.restore_conflict(id)?;
    println!(
        "restored conflict #{}: {} {} is back to the version stamped {} (by {}), as a new local change",
        c.id, c.table, c.key, c.loser_stamp, c.loser_origin
    );
    if sync_now {
        let report = sync::run_sync(&cache, bars)?;
        sync::print_report(&cache, &report);
    } else {
        println!(
            "it reaches the remote and every client at the next sync (`sharecache sync`, or the \
             app's or daemon's sync thread)"
        );
    }
    Ok(())
}
