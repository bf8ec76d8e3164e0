//! PostgreSQL ↔ SQLite values (src/remote/postgres/types.rs): a property test per type that a
//! value written on the server, read into the cache's form and written back is the same value
//! (compared by the server's text form, so `1.50` ≠ `1.5`), and that the cache form read back
//! is unchanged; then the refusals.

use std::cell::RefCell;

use postgres::types::ToSql;
use proptest::prelude::*;
use rusqlite::types::Value;
use sharecache::remote::postgres::types::{self, Kind};

use crate::support::pg::{self, PgDb};

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A database with `t (id int PRIMARY KEY, v <pg_type>)`.
fn table(test: &str, pg_type: &str) -> Option<(PgDb, RefCell<postgres::Client>)> {
    let db = pg::database(test)?;
    let mut c = db.store();
    c.batch_execute(&format!("CREATE TABLE t (id int PRIMARY KEY, v {pg_type})"))
        .unwrap();
    Some((db, RefCell::new(c)))
}

/// Seeds row 1 with `seed` (bound as `$1` in `seed_sql`), reads it the cache's way, writes that
/// into row 2 the push's way; returns the cache value, or why the two rows differ.
fn round_trip(
    c: &RefCell<postgres::Client>,
    seed_sql: &str,
    seed: &(dyn ToSql + Sync),
) -> Result<Value, String> {
    let c = &mut *c.borrow_mut();
    c.execute("DELETE FROM t", &[]).unwrap();
    c.execute(&format!("INSERT INTO t VALUES (1, {seed_sql})"), &[seed])
        .map_err(|e| format!("seed: {e:?}"))?;
    let cols = types::describe(c, "public", "t").unwrap();
    let col = &cols[1];
    let kind = col.kind.clone().ok_or("no mapping")?;
    let read = |c: &mut postgres::Client, id: i32| -> Result<Value, String> {
        let row = c
            .query_one(
                &format!("SELECT {} FROM t WHERE id = $1", kind.select("v")),
                &[&id],
            )
            .unwrap();
        kind.read(&row, 0, "v").map_err(|e| e.to_string())
    };
    let value = read(c, 1)?;
    let param = kind.param(&value, "v").map_err(|e| e.to_string())?;
    c.execute(
        &format!(
            "INSERT INTO t VALUES (2, {})",
            kind.param_sql(1, &col.pg_type)
        ),
        &[&*param],
    )
    .map_err(|e| format!("write back {value:?}: {e:?}"))?;
    let same: bool = c
        .query_one("SELECT (SELECT v::text FROM t WHERE id = 1) IS NOT DISTINCT FROM (SELECT v::text FROM t WHERE id = 2)", &[])
        .unwrap()
        .get(0);
    let again = read(c, 2)?;
    if !same || again != value {
        let texts: Vec<Option<String>> = c
            .query("SELECT v::text FROM t ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        return Err(format!(
            "changed: server {texts:?}, cache {value:?} then {again:?}"
        ));
    }
    Ok(value)
}

macro_rules! prop_round_trip {
    ($name:ident, $pg_type:expr, $seed_sql:expr, $strategy:expr) => {
        #[test]
        fn $name() {
            let Some((_db, c)) = table(stringify!($name), $pg_type) else { return };
            proptest!(cases(), |(seed in $strategy)| {
                round_trip(&c, $seed_sql, &seed).map_err(TestCaseError::fail)?;
            });
        }
    };
}

fn text() -> impl Strategy<Value = String> {
    // Any text PostgreSQL can store (no NUL), quotes, backslashes, emoji and all.
    prop_oneof!["[^\u{0}]{0,24}", "['\\\\\"\u{1F600}é ]{0,6}"]
}

fn numeric() -> impl Strategy<Value = String> {
    let number = (
        any::<bool>(),
        "[0-9]{1,30}",
        proptest::option::of("[0-9]{0,20}"),
    )
        .prop_map(|(neg, int, frac)| {
            let sign = if neg { "-" } else { "" };
            match frac {
                Some(f) if !f.is_empty() => format!("{sign}{int}.{f}"),
                _ => format!("{sign}{int}"),
            }
        });
    prop_oneof![9 => number, 1 => Just("NaN".to_owned())]
}

fn json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        "-?(0|[1-9][0-9]{0,4})\\.[0-9]{1,5}(e[0-9])?",
        text().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec(("[a-z\"]{0,4}", inner), 0..4).prop_map(|v| {
                let fields: Vec<String> = v
                    .iter()
                    .map(|(k, x)| format!("{}:{x}", serde_json::to_string(k).unwrap()))
                    .collect();
                format!("{{ {} }}", fields.join(",  "))
            }),
        ]
    })
}

prop_round_trip!(
    pg_smallint_round_trips_exactly,
    "smallint",
    "$1::int2",
    any::<i16>()
);
prop_round_trip!(
    pg_integer_round_trips_exactly,
    "integer",
    "$1::int4",
    any::<i32>()
);
prop_round_trip!(
    pg_bigint_round_trips_exactly,
    "bigint",
    "$1::int8",
    any::<i64>()
);
prop_round_trip!(
    pg_boolean_round_trips_exactly,
    "boolean",
    "$1::bool",
    proptest::option::of(any::<bool>())
);
prop_round_trip!(
    pg_double_round_trips_exactly,
    "double precision",
    "$1::float8",
    any::<f64>().prop_filter("NaN is refused", |f| !f.is_nan())
);
prop_round_trip!(
    pg_real_round_trips_exactly,
    "real",
    "$1::float4",
    any::<f32>().prop_filter("NaN is refused", |f| !f.is_nan())
);
prop_round_trip!(
    pg_numeric_round_trips_exactly,
    "numeric",
    "$1::text::numeric",
    numeric()
);
prop_round_trip!(pg_text_round_trips_exactly, "text", "$1::text", text());
prop_round_trip!(
    pg_varchar_round_trips_exactly,
    "varchar(40)",
    "$1::text::varchar(40)",
    text()
);
prop_round_trip!(
    pg_bytea_round_trips_exactly,
    "bytea",
    "$1::bytea",
    proptest::collection::vec(any::<u8>(), 0..64)
);
prop_round_trip!(
    pg_uuid_round_trips_exactly,
    "uuid",
    "$1::text::uuid",
    any::<[u8; 16]>().prop_map(|b| b.iter().map(|x| format!("{x:02X}")).collect::<String>())
);
prop_round_trip!(
    pg_date_round_trips_exactly,
    "date",
    "('2000-01-01'::date + $1::int4)",
    -2_000_000i32..2_000_000
);
prop_round_trip!(
    pg_timestamp_round_trips_exactly,
    "timestamp",
    "('2000-01-01'::timestamp + $1::int8 * interval '1 microsecond')",
    -(1i64 << 55)..(1i64 << 55)
);
prop_round_trip!(
    pg_timestamptz_round_trips_exactly,
    "timestamptz",
    "('2000-01-01 00:00:00+00'::timestamptz + $1::int8 * interval '1 microsecond')",
    -(1i64 << 55)..(1i64 << 55)
);
prop_round_trip!(
    pg_json_round_trips_exactly,
    "json",
    "$1::text::json",
    json()
);
prop_round_trip!(
    pg_jsonb_round_trips_exactly,
    "jsonb",
    "$1::text::jsonb",
    json()
);
prop_round_trip!(
    pg_integer_array_round_trips_exactly,
    "integer[]",
    "$1::int4[]",
    proptest::option::of(proptest::collection::vec(
        proptest::option::of(any::<i32>()),
        0..6
    ))
);
prop_round_trip!(
    pg_text_array_round_trips_exactly,
    "text[]",
    "$1::text[]",
    proptest::collection::vec(proptest::option::of(text()), 0..5)
);
prop_round_trip!(
    pg_numeric_array_round_trips_exactly,
    "numeric[]",
    "string_to_array($1::text, '|')::numeric[]",
    proptest::collection::vec(numeric(), 1..4).prop_map(|v| v.join("|"))
);

#[test]
fn pg_special_values_round_trip_exactly() {
    for (pg_type, literal) in [
        ("date", "infinity"),
        ("date", "0044-03-15 BC"),
        ("timestamptz", "-infinity"),
        ("timestamp", "294276-12-31 23:59:59.999999"),
        ("double precision", "Infinity"),
        ("double precision", "-0"),
        ("numeric", "0.000000000000000000000000000001"),
        ("jsonb", "{\"b\": [1, 2.50], \"a\": \"\\u00e9\"}"),
        ("text[]", "{}"),
        ("boolean[]", "{t,NULL,f}"),
        ("timestamptz[]", "{\"2026-12-04 10:15:30.123456+00\"}"),
        ("bytea[]", "{\"\\\\x00ff\"}"),
    ] {
        let Some((_db, c)) = table("special", pg_type) else {
            return;
        };
        let v = round_trip(&c, &format!("$1::text::{pg_type}"), &literal);
        assert!(v.is_ok(), "{pg_type} {literal}: {v:?}");
    }
}

#[test]
fn pg_values_that_cannot_cross_exactly_are_refused() {
    let Some((_db, c)) = table("refused_nan", "double precision") else {
        return;
    };
    let e = round_trip(&c, "'NaN'::float8 + 0 * $1::int4", &1i32).unwrap_err();
    assert!(e.contains("NaN has no SQLite form"), "{e}");
    let Some((_db, c)) = table("refused_dims", "integer[]") else {
        return;
    };
    let e = round_trip(&c, "$1::text::int4[]", &"{{1,2},{3,4}}").unwrap_err();
    assert!(e.contains("more than one dimension"), "{e}");
    let e = round_trip(&c, "$1::text::int4[]", &"[0:1]={5,6}").unwrap_err();
    assert!(e.contains("lower bound other than 1"), "{e}");
    // A cache value of the wrong storage class is refused, not converted.
    assert!(
        Kind::Bool
            .param(&Value::Integer(2), "b")
            .unwrap_err()
            .to_string()
            .contains("0 or 1")
    );
    let e = Kind::Integer
        .param(&Value::Text("12".into()), "n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("n: the cache holds text where the server column needs an integer"),
        "{e}"
    );
    assert!(Kind::Bytea.param(&Value::Text("x".into()), "b").is_err());
}

#[test]
fn pg_unsupported_types_are_reported_with_their_name() {
    let Some(db) = pg::database("unsupported_types") else {
        return;
    };
    let mut c = db.store();
    c.batch_execute(
        "CREATE TABLE u (id int PRIMARY KEY, a money, b interval, c char(3), d point, e int4range, f integer[][])",
    )
    .unwrap();
    let cols = types::describe(&mut c, "public", "u").unwrap();
    let unsupported: Vec<&str> = cols
        .iter()
        .filter(|c| c.kind.is_none())
        .map(|c| c.pg_type.as_str())
        .collect();
    assert_eq!(
        unsupported,
        ["money", "interval", "character(3)", "point", "int4range"]
    );
    assert_eq!(cols[0].kind, Some(Kind::Integer));
    assert!(cols[0].key && !cols[1].key);
    let e = types::check("u", &cols).unwrap_err().to_string();
    assert!(
        e.contains("u.a: PostgreSQL type money has no SQLite mapping"),
        "{e}"
    );
}
