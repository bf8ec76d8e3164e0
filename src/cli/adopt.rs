//! `sharecache adopt`: the admin's word that the database at the configured path is the one
//! other caches here were made for under another path (it moved, whatever the old path still
//! holds). Their pending writes are pushed to it, and this path's cache is made (its history says
//! what it took over); see `sharecache::handle::handover`.

use sharecache::Config;
use sharecache::clock::Clock;
use sharecache::handle::handover;

/// Runs `sharecache adopt`.
pub fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let handed = handover::adopt(config, Clock::system())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&handed)?);
        return Ok(());
    }
    if handed.is_empty() {
        println!(
            "nothing to adopt: no other cache in {} holds pending writes for the database at {}",
            config.cache_directory.display(),
            config.remote_path.display()
        );
        return Ok(());
    }
    for h in &handed {
        println!("adopted: {}", h.summary());
    }
    println!(
        "the database at {} has them; its cache records it in `sharecache history`",
        config.remote_path.display()
    );
    Ok(())
}
