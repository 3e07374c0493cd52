//! Parser and printer speed on a generated 20 MB module, single thread.
//!
//! `cargo bench --bench syntax` (criterion); the tree-to-source memory ratio is printed first.
//! The generated file is deterministic (`spry_image::corpus`), so figures compare across runs.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use spry_image::corpus::{CorpusOptions, generate_file};
use spry_image::syntax::{Ast, parse};

fn bench(c: &mut Criterion) {
    let size = std::env::var("SPRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20);
    let text = generate_file(size * 1_000_000, &CorpusOptions::default()).into_bytes();
    let parsed = parse(text.clone());
    assert!(parsed.errors.is_empty(), "the generated corpus must parse");
    eprintln!(
        "source {} bytes, {} tokens, {} composites; tree {} bytes = {:.2}x the source",
        text.len(),
        parsed.tree.token_count(),
        parsed.tree.composite_count(),
        parsed.tree.heap_size(),
        parsed.tree.heap_size() as f64 / text.len() as f64
    );

    let mut group = c.benchmark_group("syntax");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_with_input(BenchmarkId::new("parse", size), &text, |b, text| {
        b.iter_batched(
            || text.clone(),
            |t| black_box(parse(t)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_with_input(BenchmarkId::new("print", size), &parsed.tree, |b, tree| {
        b.iter(|| black_box(tree.to_bytes()))
    });
    group.bench_with_input(
        BenchmarkId::new("semantic", size),
        &parsed.tree,
        |b, tree| b.iter(|| black_box(Ast::from_tree(tree))),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
