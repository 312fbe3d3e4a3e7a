//! The history queries' tests: the query API and SQL over parts written
//! as ingest writes them.

use super::*;

/// A `minutes` part as ingest writes it.
fn part(dir: &Path, day: &str, rows: &[(&str, i64, &str, u64)]) {
    let d = dir.join("minutes").join(format!("date={day}"));
    std::fs::create_dir_all(&d).expect("dir");
    let mut cols = vec![
        Column::new("node".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        Column::new(
            "minute".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        Column::new("zone".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
    ];
    for c in HISTORY_COUNTS {
        let v: Vec<u64> = rows
            .iter()
            .map(|r| if c == "samples" { r.3 } else { 0 })
            .collect();
        cols.push(Column::new(c.into(), v));
    }
    let mut df = DataFrame::new(rows.len(), cols).expect("frame");
    let f = std::fs::File::create(d.join("part-000000000001-000000000002.parquet")).expect("file");
    ParquetWriter::new(f).finish(&mut df).expect("write");
}

/// Two micro-grids of the Daqi street.
fn daqi_microgrids(reg: &gridwatch_model::Registry) -> Vec<String> {
    reg.microgrids
        .iter()
        .map(|&m| reg.node(m).id.to_string())
        .filter(|n| n.starts_with("beilun/daqi/"))
        .take(2)
        .collect()
}

#[test]
fn a_query_sums_by_bucket_and_level_with_its_filters() {
    let reg = gridwatch_runtime::registry::load(None).expect("registry");
    let dir = tempfile::tempdir().expect("dir");
    let mgs = daqi_microgrids(&reg);
    let nine = 1_665_795_600 / 60; // 2022-10-15 09:00 local
    part(
        dir.path(),
        "2022-10-15",
        &[
            (&mgs[0], nine, "sealed", 5),
            (&mgs[0], nine + 30, "sealed", 7),
            (&mgs[1], nine + 61, "prevention", 11),
        ],
    );
    let h = History::new(dir.path().to_path_buf(), &reg).expect("history");
    let mut q = Query {
        metrics: vec!["samples".into()],
        level: Level::Street,
        node: "beilun".into(),
        zone: None,
        from: nine - 60,
        to: nine + 180,
        bucket: Bucket::H1,
    };
    let df = h.run(&q).expect("run");
    assert_eq!(df.height(), 2, "{df}");
    let s: Vec<Option<u64>> = df
        .column("samples")
        .and_then(|c| c.u64())
        .expect("u64")
        .iter()
        .collect();
    assert_eq!(s, [Some(12), Some(11)]);
    q.zone = Some(Zone::Sealed);
    q.bucket = Bucket::D1;
    let df = h.run(&q).expect("run");
    let b = df
        .column("bucket")
        .and_then(|c| c.i64())
        .expect("i64")
        .get(0);
    // The local day's start: 2022-10-14 16:00 UTC.
    assert_eq!(b, Some(1_665_763_200 / 60));
    assert_eq!(
        df.column("samples")
            .and_then(|c| c.u64())
            .expect("u64")
            .get(0),
        Some(12)
    );
    q.zone = None;
    q.node = "beilun/xinqi".into();
    assert_eq!(h.run(&q).expect("run").height(), 0);
    // Each micro-grid its own row, under the street asked; a node with no
    // micro-grid (not in the registry) has none.
    q.level = Level::Microgrid;
    q.node = "beilun/daqi".into();
    q.bucket = Bucket::H1;
    let df = plain_strings(h.run(&q).expect("run"));
    let got: Vec<Option<&str>> = df
        .column("microgrid")
        .and_then(|c| c.str())
        .expect("str")
        .iter()
        .collect();
    assert_eq!(got, [Some(mgs[0].as_str()), Some(mgs[1].as_str())]);
    q.node = "beilun/nowhere".into();
    assert_eq!(h.run(&q).expect("run").height(), 0);
}

#[test]
fn sql_joins_groups_and_string_functions_over_node_ids_as_strings() {
    let reg = gridwatch_runtime::registry::load(None).expect("registry");
    let dir = tempfile::tempdir().expect("dir");
    let mgs = daqi_microgrids(&reg);
    let nine = 1_665_795_600 / 60;
    part(
        dir.path(),
        "2022-10-15",
        &[
            (&mgs[0], nine, "sealed", 5),
            (&mgs[1], nine, "sealed", 7),
            (&mgs[1], nine + 1, "sealed", 1),
        ],
    );
    let h = History::new(dir.path().to_path_buf(), &reg)
        .expect("history")
        .keep_decoded(1 << 20);
    let run = |sql: &str| {
        h.sql(sql, |lf| lf.collect())
            .map(plain_strings)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    for _ in 0..2 {
        // A join and a group-by on the ids (categoricals inside), the
        // answer in plain strings.
        let df = run(
            "SELECT n.street, h.node, sum(h.samples) AS s FROM history h \
             JOIN nodes n ON h.node = n.node GROUP BY 1, 2 ORDER BY h.node",
        );
        let nodes = df.column("node").and_then(|c| c.str()).expect("str");
        assert_eq!(nodes.get(0), Some(mgs[0].as_str()));
        let streets = df.column("street").and_then(|c| c.str()).expect("str");
        assert_eq!(streets.get(1), Some("beilun/daqi"));
        let s = df.column("s").and_then(|c| c.u64()).expect("u64");
        assert_eq!(s.get(1), Some(8));
        // String functions on the ids run over plain strings.
        let df = run(&format!(
            "SELECT upper(node) AS u, count(*) AS c FROM history \
             WHERE node LIKE '{}%' GROUP BY 1",
            mgs[1]
        ));
        let u = df.column("u").and_then(|c| c.str()).expect("str");
        assert_eq!(u.get(0), Some(mgs[1].to_uppercase().as_str()));
    }
    assert!(h.kept_bytes() > 0);
    // The kept columns hold no null: a grouped SUM over them is one
    // reduction (`history::plan`).
    let plan = h.sql(
        "SELECT node, sum(samples) AS s FROM history GROUP BY node",
        |lf| Ok(format!("{:?}", lf.logical_plan)),
    );
    assert!(plan.is_ok_and(|p| p.contains("sum") && !p.contains("null_count")));
    // Bad SQL still gets polars' own words.
    let e = h.sql("SELECT nope FROM history", |lf| lf.collect());
    let e = e.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("nope"), "{e}");
}
