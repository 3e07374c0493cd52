//! Parser and printer speed on a 20 MB module, single thread: the lossless parse, and beside it
//! the semantic view and the canonical and pretty printers that `parse --canonical` and
//! `parse --pretty` add to it (issue 15: each within 2x of the parse).
//!
//! `cargo bench --bench syntax` (criterion); the tree-to-source memory ratio is printed first.
//! The generated file is deterministic (`spry_image::corpus`), so figures compare across runs.
//! `SPRY_BENCH_FILE=path` reads that file instead (a corpus the project did not generate, such
//! as Spry's own `.sy` files concatenated); `SPRY_BENCH_MB` sizes the generated one.
//!
//! `SPRY_BENCH_CLOCK=cpu` times the benchmarking thread's time on a core instead of the wall
//! clock (`/proc/thread-self/schedstat`, kernel time such as page faults included, updated at
//! each scheduler tick, so a few ms coarse per sample): on a loaded machine the wall clock also
//! counts the wait for a core, which swamps the ratios this bench is for. `SPRY_BENCH_BEST=N`
//! prints each step's best of N rounds on that clock instead of running criterion;
//! `SPRY_BENCH_STEP=semantic` (a comma-separated list) runs only those steps, so that
//! `perf stat` or `perf record` of the whole process sees little else.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

use spry_image::corpus::{CorpusOptions, generate_file};
use spry_image::syntax::{Ast, parse};

/// The text to read: `SPRY_BENCH_FILE`, or `gen`'s module of `SPRY_BENCH_MB`; and its label.
fn corpus() -> (Vec<u8>, String) {
    let size = std::env::var("SPRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20);
    match std::env::var_os("SPRY_BENCH_FILE") {
        Some(path) => {
            let text = std::fs::read(&path).expect("SPRY_BENCH_FILE must be readable");
            let name = std::path::Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (text, name)
        }
        None => (
            generate_file(size * 1_000_000, &CorpusOptions::default()).into_bytes(),
            size.to_string(),
        ),
    }
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    let (text, label) = corpus();
    let parsed = parse(text.clone());
    assert!(parsed.errors.is_empty(), "the corpus must parse");
    let ast = Ast::from_tree(&parsed.tree);
    eprintln!(
        "source {} bytes, {} tokens, {} composites, {} view nodes; tree {} bytes = {:.2}x the source; view {} bytes = {:.2}x",
        text.len(),
        parsed.tree.token_count(),
        parsed.tree.composite_count(),
        ast.node_count(),
        parsed.tree.heap_size(),
        parsed.tree.heap_size() as f64 / text.len() as f64,
        ast.heap_size(),
        ast.heap_size() as f64 / text.len() as f64
    );

    let mut group = c.benchmark_group("syntax");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_with_input(BenchmarkId::new("parse", &label), &text, |b, text| {
        b.iter_batched(
            || text.clone(),
            |t| black_box(parse(t)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_with_input(
        BenchmarkId::new("print", &label),
        &parsed.tree,
        |b, tree| b.iter(|| black_box(tree.to_bytes())),
    );
    // The three below are what issue 15 holds to 2x the parse; each is timed alone, from the
    // tree (view) or from the view (printers), dropping included.
    group.bench_with_input(
        BenchmarkId::new("semantic", &label),
        &parsed.tree,
        |b, tree| b.iter(|| black_box(Ast::from_tree(tree))),
    );
    group.bench_with_input(BenchmarkId::new("canonical", &label), &ast, |b, ast| {
        b.iter(|| black_box(ast.canonical()))
    });
    group.bench_with_input(BenchmarkId::new("pretty", &label), &ast, |b, ast| {
        b.iter(|| black_box(ast.pretty()))
    });
    group.finish();
}

/// The calling thread's time on a core, in nanoseconds (see the module's comment).
struct CpuTime(WallTime);

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("SPRY_BENCH_CLOCK=cpu needs /proc/thread-self/schedstat")
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, as the wall clock's.
        self.0.formatter()
    }
}

/// `SPRY_BENCH_BEST=N`: instead of criterion, the best of N rounds of each step, the steps
/// taking turns within a round so that a loaded machine weighs on all of them alike. A step's
/// figure is its time on a core (the wall clock's beside it), dropping what it made included
/// for all five, each sample repeating the step until it has had 300 ms of a core (the
/// thread's clock moves a scheduler tick at a time).
fn best_of(rounds: usize) {
    let (text, label) = corpus();
    let parsed = parse(text.clone());
    assert!(parsed.errors.is_empty(), "the corpus must parse");
    let ast = Ast::from_tree(&parsed.tree);
    let tree = &parsed.tree;
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{label}: {} bytes, {} view nodes, view {} bytes, load before {}",
        text.len(),
        ast.node_count(),
        ast.heap_size(),
        load().trim()
    );
    let steps: [&str; 5] = ["parse", "print", "semantic", "canonical", "pretty"];
    let only = std::env::var("SPRY_BENCH_STEP").unwrap_or_default();
    let chosen = |step: usize| only.is_empty() || only.split(',').any(|s| s == steps[step]);
    let mut best = [(u64::MAX, u64::MAX); 5];
    for _ in 0..rounds {
        for (step, best) in best.iter_mut().enumerate() {
            if !chosen(step) {
                continue;
            }
            let (mut cpu, mut wall, mut reps) = (0u64, 0u64, 0u64);
            while cpu < 300_000_000 {
                let input = (step == 0).then(|| text.clone());
                let (c, w) = (thread_cpu_ns(), std::time::Instant::now());
                match step {
                    0 => drop(black_box(parse(input.unwrap_or_default()))),
                    1 => drop(black_box(tree.to_bytes())),
                    2 => drop(black_box(Ast::from_tree(tree))),
                    3 => drop(black_box(ast.canonical())),
                    _ => drop(black_box(ast.pretty())),
                }
                wall += w.elapsed().as_nanos() as u64;
                cpu += thread_cpu_ns().saturating_sub(c);
                reps += 1;
            }
            best.0 = best.0.min(cpu / reps);
            best.1 = best.1.min(wall / reps);
        }
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    println!("| step | best on a core | MB/s | x the parse | best wall |");
    println!("| --- | --- | --- | --- | --- |");
    for (step, (cpu, wall)) in steps.iter().zip(best) {
        if cpu == u64::MAX {
            continue;
        }
        let ratio = match best[0].0 {
            u64::MAX => "-".to_string(),
            parse => format!("{:.2}x", cpu as f64 / parse as f64),
        };
        println!(
            "| {step} | {:.1} ms | {:.1} | {ratio} | {:.1} ms |",
            ms(cpu),
            text.len() as f64 / 1e3 / ms(cpu),
            ms(wall)
        );
    }
    println!("load after {}", load().trim());
}

fn main() {
    if let Some(rounds) = std::env::var("SPRY_BENCH_BEST")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        best_of(rounds);
    } else if std::env::var("SPRY_BENCH_CLOCK").is_ok_and(|v| v == "cpu") {
        let mut c = Criterion::default()
            .with_measurement(CpuTime(WallTime))
            .configure_from_args();
        bench(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c);
        c.final_summary();
    }
}
