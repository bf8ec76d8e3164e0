//! Writing batches of cache rows into PostgreSQL tables (src/remote/postgres/rows.rs): every value
//! lands as the cache holds it, a batch is one statement whatever its size, a bad value refuses
//! the batch.

use rusqlite::types::Value;
use sharecache::remote::postgres::{rows, types};

use crate::support::pg;
use crate::support::proxy::Proxy;

const TABLE: &str = "CREATE TABLE items (k int, code text, n numeric, at timestamptz, ok boolean, \
                     tags text[], data bytea, w double precision, PRIMARY KEY (k, code))";

fn row(i: i64) -> Vec<Value> {
    vec![
        Value::Integer(i),
        Value::Text(format!("c'{i}")),
        Value::Text(format!("{i}.50")),
        Value::Text(format!("2026-12-04 10:00:{:02}.123456+00", i % 60)),
        Value::Integer(i % 2),
        Value::Text(format!("[\"a\",null,\"{i}\"]")),
        Value::Blob(vec![0, (i % 256) as u8]),
        Value::Real(i as f64 / 3.0),
    ]
}

/// Equal row lists, showing only the first difference.
fn same(got: &[Vec<Value>], want: &[Vec<Value>]) {
    assert_eq!(got.len(), want.len());
    if let Some((g, w)) = got.iter().zip(want).find(|(g, w)| g != w) {
        panic!("row differs:\n got  {g:?}\n want {w:?}");
    }
}

fn read_all(c: &mut postgres::Client, cols: &[types::Column]) -> Vec<Vec<Value>> {
    let sql = format!("SELECT {} FROM items ORDER BY k", types::select_list(cols));
    c.query(&sql, &[])
        .unwrap()
        .iter()
        .map(|r| {
            cols.iter()
                .enumerate()
                .map(|(i, col)| col.kind.as_ref().unwrap().read(r, i, &col.name).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn pg_upsert_and_delete_write_batches_exactly_as_the_cache_holds_them() {
    let Some(db) = pg::database("rows") else {
        return;
    };
    let mut c = db.store();
    c.batch_execute(TABLE).unwrap();
    let cols = types::describe(&mut c, "public", "items").unwrap();
    let batch: Vec<Vec<Value>> = (0..1000).map(row).collect();
    assert_eq!(
        rows::upsert(&mut c, "public", "items", &cols, &batch).unwrap(),
        1000
    );
    same(&read_all(&mut c, &cols), &batch);
    // Replacing half: same keys, new values.
    let mut changed: Vec<Vec<Value>> = (0..500).map(row).collect();
    for r in &mut changed {
        r[2] = Value::Text("-1.000".into());
        r[5] = Value::Text("[]".into());
        r[6] = Value::Null;
    }
    let mut tx = c.transaction().unwrap();
    assert_eq!(
        rows::upsert(&mut tx, "public", "items", &cols, &changed).unwrap(),
        500
    );
    tx.commit().unwrap();
    let after = read_all(&mut c, &cols);
    same(&after[..500], &changed);
    same(&after[500..], &batch[500..]);
    let keys: Vec<Vec<Value>> = (0..1000).step_by(2).map(|i| row(i)[..2].to_vec()).collect();
    assert_eq!(
        rows::delete(&mut c, "public", "items", &cols, &keys).unwrap(),
        500
    );
    let left = read_all(&mut c, &cols);
    assert_eq!(left.len(), 500);
    assert!(
        left.iter()
            .all(|r| matches!(r[0], Value::Integer(i) if i % 2 == 1))
    );
}

#[test]
fn pg_a_bad_value_refuses_the_whole_batch() {
    let Some(db) = pg::database("rows_bad") else {
        return;
    };
    let mut c = db.store();
    c.batch_execute(TABLE).unwrap();
    let cols = types::describe(&mut c, "public", "items").unwrap();
    let mut batch: Vec<Vec<Value>> = (0..10).map(row).collect();
    batch[7][4] = Value::Integer(2);
    let e = rows::upsert(&mut c, "public", "items", &cols, &batch)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ok: the cache holds an integer where the server column needs 0 or 1"),
        "{e}"
    );
    batch[7][4] = Value::Integer(1);
    batch[3][3] = Value::Text("not a time".into());
    assert!(rows::upsert(&mut c, "public", "items", &cols, &batch).is_err());
    let n: i64 = c
        .query_one("SELECT count(*) FROM items", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "part of a refused batch was written");
}

/// A batch is sent with its parameters' types (no prepare): one round trip, whatever its size.
#[test]
fn pg_a_batch_costs_one_round_trip_whatever_its_size() {
    let Some(db) = pg::database("rows_rtt") else {
        return;
    };
    let mut c = db.store();
    c.batch_execute(TABLE).unwrap();
    let cols = types::describe(&mut c, "public", "items").unwrap();
    let proxy = Proxy::start(db.server_addr());
    let mut target = db.target();
    target.host = "127.0.0.1".into();
    target.port = proxy.addr().port();
    let mut slow = sharecache::remote::postgres::connect(&target).unwrap();
    for (n, offset) in [(10, 0), (2000, 10)] {
        let batch: Vec<Vec<Value>> = (offset..offset + n).map(row).collect();
        let before = proxy.round_trips();
        rows::upsert(&mut slow, "public", "items", &cols, &batch).unwrap();
        assert_eq!(
            proxy.round_trips() - before,
            1,
            "round trips of an upsert of {n} rows"
        );
    }
}
