//! Hot paths of ingestion: parsing and validating a bulk payload, and the batch insert.
//!
//! `cargo bench -p microdash-ingest --bench ingest`. The insert benchmarks use real
//! databases: a SQLite file, and MariaDB at `MICRODASH_TEST_MYSQL_URL`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use microdash_core::metric::parse_metrics;
use microdash_core::{Batch, Limits};
use microdash_store::Backend;
use microdash_store::testing::TestDb;

/// A realistic bulk request: 1,000 metrics over 50 agents, with tags.
fn payload(n: usize, offset: usize) -> String {
    payload_of(n, offset, |i| format!("{}.5", i % 100))
}

/// The same with values written as `value(i)`.
fn payload_of(n: usize, offset: usize, value: impl Fn(usize) -> String) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"metric_name":"cpu.usage","value":{},"timestamp":{},"agent_id":"host-{}","tags":{{"dc":"eu-1","core":"{}"}}}}"#,
                value(i),
                1_700_000_000 + offset + i,
                i % 50,
                i % 4
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn parse(c: &mut Criterion) {
    let body = payload(1_000, 0);
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse_and_validate");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("bulk_1000", |b| b.iter(|| parse_metrics(black_box(body.as_bytes()), &limits, 0).unwrap()));
    // Values as a sampling agent computes them (a ratio, a rate): 16-17 significant digits,
    // which serde_json's exact float parsing (float_roundtrip) reads on its slow path.
    let precise = payload_of(1_000, 0, |i| (100.0 / (i as f64 + 7.0)).to_string());
    group.bench_function("bulk_1000_full_precision", |b| {
        b.iter(|| parse_metrics(black_box(precise.as_bytes()), &limits, 0).unwrap())
    });
    group.finish();
}

fn insert(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("insert_batch");
    group.sample_size(10);
    // 5 requests merged is a worker under light load; 50 is the default ceiling
    // (`worker_max_batch_metrics`) that a backlog reaches.
    for (backend, requests) in [(Backend::Sqlite, 5), (Backend::Sqlite, 50), (Backend::Mysql, 5), (Backend::Mysql, 50)]
    {
        group.throughput(Throughput::Elements(requests as u64 * 1_000));
        let (db, store, tenant) = rt.block_on(async {
            let db = TestDb::new(backend).await;
            let store = db.store().await;
            let tenant = store.create_tenant("bench", "", 0).await.unwrap();
            (db, store, tenant.id)
        });
        let mut round = 0;
        group.bench_function(format!("{}/{}", backend.name(), requests * 1_000), |b| {
            b.to_async(&rt).iter_batched(
                || {
                    round += 1;
                    (0..requests)
                        .map(|k| Batch {
                            tenant_id: tenant,
                            received_at_ms: 0,
                            metrics: parse_metrics(
                                payload(1_000, (round * requests + k) * 1_000).as_bytes(),
                                &Limits::default(),
                                0,
                            )
                            .unwrap(),
                        })
                        .collect::<Vec<_>>()
                },
                |batches| {
                    let store = store.clone();
                    async move { store.insert_batches(&batches, 0).await.unwrap() }
                },
                criterion::BatchSize::SmallInput,
            )
        });
        drop(db);
    }
    group.finish();
}

criterion_group!(benches, parse, insert);
criterion_main!(benches);
