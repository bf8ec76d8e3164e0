//! A PostgreSQL URL in `database.path`, from the command line: the password never printed, and
//! commands that need the remote refuse with the bad-config exit code until the backend exists.

use crate::support::cli::cli;

const PW: &str = "hunter2-Zq9";

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("config.yaml");
    std::fs::write(
        &file,
        format!("database:\n  path: postgres://app:{PW}@127.0.0.1:1/sales?application_name=desk\n  schema: books\n"),
    )
    .unwrap();
    file
}

#[test]
fn config_show_status_and_sync_never_print_the_postgres_password() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let show = cli(&cfg, &["config", "show"]);
    let out = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        out.contains("path: postgres://app@127.0.0.1:1/sales?sslmode=prefer&application_name=desk"),
        "{out}"
    );
    assert!(
        out.contains("schema: books") && out.contains("# password: the URL"),
        "{out}"
    );
    let json = cli(&cfg, &["config", "show", "--json"]);
    assert!(json.status.success());
    for (args, code) in [
        (&["config", "show", "--json"][..], 0),
        (&["status"][..], 0),
        (&["status", "--json"][..], 0),
        (&["sync", "-v"][..], 4),
    ] {
        let out = cli(&cfg, args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(PW), "{args:?} printed the password: {all}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {all}");
        if code == 4 {
            assert!(
                all.contains("the server is unreachable"),
                "nobody listens on port 1: {args:?}: {all}"
            );
        }
    }
}

#[test]
fn config_set_of_a_postgres_url_echoes_it_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "database:\n  path: //server/share/app.db\n").unwrap();
    let url = format!("postgresql://app:{PW}@db.example.com/sales");
    let out = cli(&cfg, &["config", "set", "path", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(PW), "{stdout}");
    assert!(
        stdout.contains("postgres://app@db.example.com:5432/sales"),
        "{stdout}"
    );
    let bad = cli(
        &cfg,
        &[
            "config",
            "set",
            "path",
            "postgres://app@db.example.com/sales?sslmode=verify-full",
        ],
    );
    // verify-full without a root certificate to verify against: refused, saying what to add.
    assert_eq!(
        bad.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("add sslrootcert=<file>"));
}
