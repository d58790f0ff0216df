use super::*;
use crate::{TagSet, WriteBatch};

fn store_with(rows: &[(&str, i64, f64)]) -> MetricStore {
    let store = MetricStore::in_memory();
    let mut batch = WriteBatch::new();
    for (host, t, v) in rows {
        let tags = TagSet::new([("host", *host)]).unwrap();
        batch.add_sample("cpu", tags, "usage", *t, *v);
    }
    store.write(&batch).unwrap();
    store
}

#[tokio::test]
async fn one_plan_answers_for_each_evaluation_time() {
    let store = store_with(&[("a", 1_000, 95.0), ("a", 2_000, 10.0), ("b", 2_000, 99.0)]);
    let q = PlannedQuery::plan(
        &store,
        "SELECT host, last(usage, time) AS value FROM cpu \
         WHERE time <= eval_time() GROUP BY host HAVING last(usage, time) > 90",
    )
    .await
    .unwrap();
    let hosts = |rows: Vec<(Labels, f64)>| {
        let mut h: Vec<_> = rows
            .into_iter()
            .map(|(l, v)| (l["host"].clone(), v))
            .collect();
        h.sort_by(|a, b| a.0.cmp(&b.0));
        h
    };
    assert_eq!(
        hosts(q.evaluate(1_500).await.unwrap()),
        vec![("a".into(), 95.0)]
    );
    assert_eq!(
        hosts(q.evaluate(2_500).await.unwrap()),
        vec![("b".into(), 99.0)]
    );
    // And back: nothing was folded at planning.
    assert_eq!(
        hosts(q.evaluate(1_000).await.unwrap()),
        vec![("a".into(), 95.0)]
    );
    // Data written after planning is seen by the next run.
    store
        .write(&{
            let mut b = WriteBatch::new();
            b.add_sample(
                "cpu",
                TagSet::new([("host", "c")]).unwrap(),
                "usage",
                2_000,
                91.0,
            );
            b
        })
        .unwrap();
    assert_eq!(hosts(q.evaluate(2_500).await.unwrap()).len(), 2);
}

#[tokio::test]
async fn latest_is_read_at_execution() {
    let store = store_with(&[("a", 1_000, 50.0)]);
    let q = PlannedQuery::plan(
        &store,
        "SELECT host, usage FROM latest('cpu') WHERE usage > 90",
    )
    .await
    .unwrap();
    assert!(q.evaluate(0).await.unwrap().is_empty());
    let mut b = WriteBatch::new();
    b.add_sample(
        "cpu",
        TagSet::new([("host", "a")]).unwrap(),
        "usage",
        2_000,
        95.0,
    );
    store.write(&b).unwrap();
    assert_eq!(q.evaluate(0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn unusable_queries_are_refused_with_the_planners_message() {
    let store = store_with(&[("a", 1_000, 50.0)]);
    let err = PlannedQuery::plan(&store, "SELECT nope FROM cpu")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let err = PlannedQuery::plan(&store, "SELECT host FROM cpu")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no numeric column"), "{err}");
    let err = PlannedQuery::plan(&store, "SELECT host, usage, usage * 2 AS x FROM cpu")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("several numeric"), "{err}");
    let ok = PlannedQuery::plan(
        &store,
        "SELECT host, time, usage * 2 AS value, usage FROM cpu",
    )
    .await
    .unwrap();
    assert_eq!(ok.shape().value, 2);
    assert!(PlannedQuery::plan(&store, "DROP TABLE cpu").await.is_err());
}
