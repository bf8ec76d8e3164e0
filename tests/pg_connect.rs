//! Connecting to the PostgreSQL remote: TLS as `sslmode` says (the test server has a self-signed
//! certificate, as `ci/postgres` makes it), and the session settings the value mapping needs.

use sharecache::ErrorKind;
use sharecache::config::{RootCert, SslMode};
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

fn refused(target: &sharecache::config::PgTarget) -> sharecache::remote::RemoteError {
    match connect(target) {
        Ok(_) => panic!("connected: {}", target.display_url()),
        Err(e) => e.into_remote("test"),
    }
}

/// The test server's certificate (self-signed for `localhost`, `ci/postgres` makes it): the root
/// a `verify-` mode checks it against.
fn server_certificate() -> Option<String> {
    let dir = std::env::var("SHARECACHE_TEST_PG_DIR").ok()?;
    Some(format!("{dir}/data/server.crt"))
}

#[test]
fn pg_sslmode_verify_checks_the_certificate_against_sslrootcert_and_full_also_the_host() {
    let Some(db) = pg::database("tls_verify") else {
        return;
    };
    let cert = server_certificate().expect("ci/postgres sets SHARECACHE_TEST_PG_DIR");
    let mut target = db.target();
    target.sslrootcert = Some(RootCert::File(cert.clone()));
    target.sslmode = SslMode::VerifyCa;
    let mut c = connect(&target).expect("verify-ca: signed by the given root");
    assert!(uses_tls(&mut c));
    // The certificate names `localhost`; the URL's 127.0.0.1 is not that name.
    target.sslmode = SslMode::VerifyFull;
    let e = refused(&target);
    assert_eq!(
        e.kind(),
        ErrorKind::Remote,
        "a failed check is not a network outage: {e}"
    );
    assert!(e.to_string().contains("certificate"), "{e}");
    target.host = "localhost".into();
    let mut c = connect(&target).expect("verify-full: the certificate names localhost");
    assert!(uses_tls(&mut c));
    // Another authority: refused, even for the right host.
    let scratch = tempfile::tempdir().unwrap();
    let (key, other) = (scratch.path().join("k.pem"), scratch.path().join("ca.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "1",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    target.sslrootcert = Some(RootCert::File(other.display().to_string()));
    let e = refused(&target);
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    // A root file that is not there: said so.
    target.sslrootcert = Some(RootCert::File(format!("{cert}.missing")));
    let e = refused(&target).to_string();
    assert!(e.contains("sslrootcert: cannot read"), "{e}");
}
