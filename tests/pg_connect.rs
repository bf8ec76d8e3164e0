//! Connecting to the PostgreSQL remote: TLS as `sslmode` says (the test server has a self-signed
//! certificate, as `ci/postgres` makes it), and the session settings the value mapping needs.

use sharecache::config::SslMode;
use sharecache::remote::postgres::connect;

use crate::support::pg;

fn uses_tls(c: &mut postgres::Client) -> bool {
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn pg_sslmode_require_encrypts_to_a_server_with_a_self_signed_certificate() {
    let Some(db) = pg::database("tls") else {
        return;
    };
    let mut target = db.target();
    target.sslmode = SslMode::Require;
    let mut c = connect(&target).expect("sslmode=require against a self-signed certificate");
    assert!(uses_tls(&mut c), "sslmode=require connected without TLS");
    target.sslmode = SslMode::Prefer;
    assert!(
        uses_tls(&mut connect(&target).unwrap()),
        "prefer did not use the TLS on offer"
    );
    target.sslmode = SslMode::Disable;
    assert!(
        !uses_tls(&mut connect(&target).unwrap()),
        "disable used TLS"
    );
}

#[test]
fn pg_sessions_print_dates_in_iso_and_utc_whatever_the_server_default() {
    let Some(db) = pg::database("session") else {
        return;
    };
    let mut admin = db.connect();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET TimeZone = 'America/New_York'; \
             ALTER DATABASE \"{}\" SET DateStyle = 'SQL, DMY'",
            db.name, db.name
        ))
        .unwrap();
    let mut c = db.store();
    let t: String = c
        .query_one("SELECT '2026-12-04 10:15:30.5+00'::timestamptz::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(t, "2026-12-04 10:15:30.5+00");
    let d: String = c
        .query_one("SELECT '2026-12-04'::date::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(d, "2026-12-04");
}

#[test]
fn pg_a_wrong_password_is_an_error_that_does_not_repeat_it() {
    let Some(db) = pg::database("bad password") else {
        return;
    };
    let mut target = db.target();
    let wrong = "wrong-Pw-77";
    let yaml = format!(
        "database:\n  path: 'postgres://{}:{wrong}@{}/{}'\n",
        target.user,
        db.server_addr(),
        target.dbname
    );
    target = sharecache::Config::from_yaml_str(&yaml, "t.yaml".as_ref(), "/".as_ref())
        .unwrap()
        .postgres
        .unwrap();
    let Err(e) = connect(&target) else {
        panic!("a wrong password connected")
    };
    let text = format!("{e} {e:?}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains(wrong), "{text}");
}
