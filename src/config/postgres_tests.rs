//! `database.path` as a PostgreSQL URL: parsing, the password kept out of every rendering, and
//! errors that say what to fix.

use std::path::Path;

use super::postgres::with_password;
use super::*;

const PW: &str = "s3cr#t-Pa55";

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str(yaml, Path::new("config.yaml"), Path::new("/etc/app"))
}

fn pg(url: &str) -> Result<Config, ConfigError> {
    parse(&format!("database:\n  path: '{url}'\n"))
}

fn err(url: &str) -> String {
    let e = pg(url).unwrap_err();
    assert!(
        matches!(e, ConfigError::InvalidValue { ref key, .. } if key == "database.path"),
        "{e}"
    );
    e.to_string()
}

#[test]
fn a_postgres_url_gives_user_host_port_database_and_options() {
    let config = pg(
        "postgresql://app:pw@db.example.com:6543/sales?sslmode=require&application_name=desk%20app",
    )
    .unwrap();
    let t = config.postgres.as_ref().unwrap();
    assert_eq!(
        (t.user.as_str(), t.host.as_str(), t.port, t.dbname.as_str()),
        ("app", "db.example.com", 6543, "sales")
    );
    assert_eq!(t.sslmode, SslMode::Require);
    assert_eq!(t.application_name.as_deref(), Some("desk app"));
    assert_eq!(t.password.as_ref().unwrap().expose(), "pw");
    assert_eq!(t.password_from, PasswordFrom::Url);
    assert_eq!(config.schema, "public");
    assert_eq!(
        config.remote_path,
        Path::new(
            "postgres://app@db.example.com:6543/sales?sslmode=require&application_name=desk%20app"
        )
    );
}

#[test]
fn a_postgres_url_defaults_to_port_5432_and_sslmode_prefer_and_reads_ipv6_and_escapes() {
    let config = pg("POSTGRES://us%40er@[::1]/d%2Fb").unwrap_err();
    assert!(
        config.to_string().contains("not a database name"),
        "{config}"
    );
    let t = pg("postgres://us%40er@[::1]/db").unwrap().postgres.unwrap();
    assert_eq!(
        (t.user.as_str(), t.host.as_str(), t.port),
        ("us@er", "::1", 5432)
    );
    assert_eq!(t.sslmode, SslMode::Prefer);
    assert_eq!(t.password_from, PasswordFrom::Nowhere);
    assert_eq!(
        t.display_url(),
        "postgres://us%40er@[::1]:5432/db?sslmode=prefer"
    );
}

#[test]
fn the_password_never_appears_in_debug_show_or_the_remote_path() {
    let url = format!("postgres://app:{}@h/db", PW.replace('#', "%23"));
    let config = pg(&url).unwrap();
    assert_eq!(
        config
            .postgres
            .as_ref()
            .unwrap()
            .password
            .as_ref()
            .unwrap()
            .expose(),
        PW
    );
    for shown in [
        format!("{config:?}"),
        config.to_yaml(),
        config.remote_path.display().to_string(),
    ] {
        assert!(
            !shown.contains(PW) && !shown.contains("s3cr"),
            "password leaked: {shown}"
        );
    }
    assert!(
        config
            .to_yaml()
            .contains("  # password: the URL in the config file (not shown)\n")
    );
    let e = config.share_path().unwrap_err().to_string();
    assert!(!e.contains("s3cr"), "{e}");
    // A bad URL's error does not repeat the password either.
    let bad = err(&format!("postgres://app:{PW}@h:99999/db"));
    assert!(
        !bad.contains("s3cr") && bad.contains("port `99999`"),
        "{bad}"
    );
}

#[test]
fn the_password_comes_from_the_url_else_the_file_else_pgpassword() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{PW}\nignored\n")).unwrap();
    let bare = || pg("postgres://app@h/db").unwrap().postgres.unwrap();
    let from_file = with_password(bare(), Some(file.clone()), Some("env".into())).unwrap();
    assert_eq!(from_file.password.as_ref().unwrap().expose(), PW);
    assert_eq!(from_file.password_from, PasswordFrom::File(file.clone()));
    let from_env = with_password(bare(), None, Some("env-pw".into())).unwrap();
    assert_eq!(
        (from_env.password.unwrap().expose(), from_env.password_from),
        ("env-pw", PasswordFrom::Env)
    );
    let none = with_password(bare(), None, Some(String::new())).unwrap();
    assert_eq!(
        (none.password, none.password_from),
        (None, PasswordFrom::Nowhere)
    );
    let with_url = pg("postgres://app:x@h/db").unwrap().postgres.unwrap();
    assert_eq!(
        with_password(with_url.clone(), None, Some("env".into()))
            .unwrap()
            .password
            .unwrap()
            .expose(),
        "x"
    );
    let both = with_password(with_url, Some(file.clone()), None).unwrap_err();
    assert!(both.contains("keep one"), "{both}");
    // Through the config file: a relative password_file resolves against the config's directory.
    let yaml =
        "database:\n  path: postgres://app@h/db\n  password_file: pw\n  schema: Sales 2024\n";
    let config = Config::from_yaml_str(yaml, Path::new("c.yaml"), dir.path()).unwrap();
    assert_eq!(
        config
            .postgres
            .as_ref()
            .unwrap()
            .password
            .as_ref()
            .unwrap()
            .expose(),
        PW
    );
    assert_eq!(config.schema, "Sales 2024");
    let shown = config.to_yaml();
    assert!(!shown.contains("s3cr"), "{shown}");
    let again = Config::from_yaml_str(&shown, Path::new("c.yaml"), dir.path()).unwrap();
    assert_eq!(
        (again.postgres, again.schema),
        (config.postgres, config.schema)
    );
    let missing = "database:\n  path: postgres://app@h/db\n  password_file: nope\n";
    let e = Config::from_yaml_str(missing, Path::new("c.yaml"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("database.password_file: cannot read the password file"),
        "{e}"
    );
}

#[test]
fn bad_urls_say_what_is_wrong_and_how_to_write_it() {
    assert!(err("postgres://app@h").contains("names no database"));
    assert!(err("postgres://h/db").contains("names no user"));
    assert!(err("postgres://app@:5432/db").contains("names no host"));
    assert!(err("postgres://app@h:x/db").contains("port `x` is not a number"));
    assert!(err("postgres://app@a,b/db").contains("several hosts"));
    assert!(err("postgres://app@h/db?sslmode=verify").contains("use disable, prefer, require"));
    assert!(err("postgres://app@h/db?sslmode=verify-full").contains("add sslrootcert=<file>"));
    assert!(
        err("postgres://app@h/db?sslmode=require&sslrootcert=ca.pem")
            .contains("read only with sslmode=verify-ca or verify-full")
    );
    assert!(
        err("postgres://app@h/db?connect_timeout=3")
            .contains("unknown URL parameter `connect_timeout`")
    );
    assert!(err("postgres://app@h/db?password=x").contains("put it in the URL itself"));
    assert!(err("postgres://app@h/d%zz").contains("two hex digits"));
}

#[test]
fn postgres_only_keys_are_refused_for_a_share() {
    for (extra, key) in [
        ("schema: sales", "database.schema"),
        ("password_file: pw", "database.password_file"),
    ] {
        let e = parse(&format!("database:\n  path: //s/share/app.db\n  {extra}\n")).unwrap_err();
        assert!(
            matches!(&e, ConfigError::InvalidValue { key: k, .. } if k == key),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("applies only when database.path is a postgres:// URL"),
            "{e}"
        );
    }
    let e = parse("database:\n  path: postgres://a@h/db\n  schema: ''\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("database.schema: must be a schema name"),
        "{e}"
    );
}

#[test]
fn auto_caches_a_server_url() {
    let config = pg("postgres://app@db.example.com/sales").unwrap();
    let decision = crate::store::detect::decide(config.enable_cache, &config.remote_path);
    assert!(decision.cached, "{}", decision.rule);
    assert!(
        decision.rule.contains("PostgreSQL server"),
        "{}",
        decision.rule
    );
}

#[test]
fn a_postgres_url_with_the_cache_switched_off_is_a_config_error_saying_a_server_is_always_cached() {
    let config =
        parse("database:\n  path: 'postgres://app:pw@127.0.0.1:1/sales'\n  enable_cache: false\n")
            .unwrap();
    let e = config.share_path().unwrap_err();
    assert!(matches!(e, ConfigError::Unsupported { .. }));
    let err = match crate::Cache::open(config) {
        Ok(_) => panic!("a PostgreSQL URL opened in direct mode, as if it were a file"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), crate::error::ErrorKind::Config);
    let text = err.to_string();
    assert!(
        text.contains("which sharecache always caches")
            && text.contains("enable_cache: auto or true"),
        "{text}"
    );
    assert!(!text.contains(":pw@"), "{text}");
    assert!(
        pg("postgres://a@h/db").is_ok()
            && parse("database:\n  path: //s/x/app.db\n")
                .unwrap()
                .share_path()
                .is_ok()
    );
}

#[test]
fn for_remote_reads_a_postgres_url_too() {
    let config = Config::for_remote("postgres://app:pw@db.example.com/sales");
    let t = config.postgres.as_ref().expect("a PostgreSQL target");
    assert_eq!(
        (t.host.as_str(), t.dbname.as_str()),
        ("db.example.com", "sales")
    );
    assert_eq!(t.password.as_ref().unwrap().expose(), "pw");
    assert_eq!(
        config.remote_path,
        Path::new("postgres://app@db.example.com:5432/sales?sslmode=prefer")
    );
    assert!(config.share_path().is_err());
}

#[test]
fn a_verifying_sslmode_reads_its_root_certificate_and_shows_it() {
    let t = pg("postgres://app@db.example.com/sales?sslmode=verify-full&sslrootcert=C%3A%5Cca.pem")
        .unwrap()
        .postgres
        .unwrap();
    assert_eq!(t.sslmode, SslMode::VerifyFull);
    assert_eq!(t.sslrootcert, Some(RootCert::File(r"C:\ca.pem".into())));
    assert_eq!(
        t.display_url(),
        "postgres://app@db.example.com:5432/sales?sslmode=verify-full&sslrootcert=C%3A%5Cca.pem"
    );
    let t = pg("postgres://app@h/db?sslmode=verify-ca&sslrootcert=system")
        .unwrap()
        .postgres
        .unwrap();
    assert_eq!(t.sslmode, SslMode::VerifyCa);
    assert_eq!(t.sslrootcert, Some(RootCert::System));
}
