//! Benchmarks of the context engine on real code nobody here wrote: the
//! crate sources under `~/.cargo/registry/src` (`$WEFT_BENCH_CORPUS`
//! overrides).
//!
//! - `raw_parse` and `index` (divan): tree-sitter parsing alone, and
//!   parsing with symbol extraction and insertion into an index, over the
//!   same files held in memory; both report bytes per second.
//! - After divan, a latency report: the whole corpus indexed from disk,
//!   then retrieval at cursors in a few hundred files, with p50/p95/p99,
//!   and the index's memory. divan has no percentiles, hence the report.
//!
//! Run with `cargo bench --workspace --bench context`.

// A benchmark's report goes to stdout.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Instant;

use divan::Bencher;
use divan::counter::BytesCount;
use weft_lsp::context::{
    ContextConfig, ContextEngine, ContextQuery, FileSymbols, Index, IndexedFile, Lang, Origin, parse, read_source,
    source_files,
};

/// Bytes of source the throughput benchmarks parse per iteration.
const THROUGHPUT_BYTES: usize = 8 << 20;
/// Files whose cursors the latency report samples.
const LATENCY_FILES: usize = 300;
/// Retrievals per cursor.
const LATENCY_REPEATS: usize = 5;

fn corpus_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_BENCH_CORPUS") {
        return PathBuf::from(dir);
    }
    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo/registry/src")
}

/// The first files of the corpus, in path order, up to [`THROUGHPUT_BYTES`].
static FILES: LazyLock<Vec<(PathBuf, Lang, String)>> = LazyLock::new(|| {
    let mut files = Vec::new();
    let mut total = 0;
    for path in source_files(&corpus_root(), 1 << 20) {
        let (Some(lang), Ok(text)) = (Lang::from_path(&path), read_source(&path, 1 << 20)) else { continue };
        total += text.len();
        files.push((path, lang, text));
        if total >= THROUGHPUT_BYTES {
            break;
        }
    }
    files
});

fn total_bytes() -> usize {
    FILES.iter().map(|(_, _, text)| text.len()).sum()
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn raw_parse(bencher: Bencher<'_, '_>) {
    bencher.counter(BytesCount::new(total_bytes())).bench(|| {
        for (_, lang, text) in FILES.iter() {
            divan::black_box(parse(*lang, text, None));
        }
    });
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn index(bencher: Bencher<'_, '_>) {
    bencher.counter(BytesCount::new(total_bytes())).bench(|| {
        let mut index = Index::new();
        for (path, lang, text) in FILES.iter() {
            let tree = parse(*lang, text, None);
            let symbols = FileSymbols::extract(*lang, &tree, text);
            index.insert(IndexedFile {
                path: path.clone(),
                display: path.to_string_lossy().into(),
                lang: *lang,
                symbols,
                bytes: text.len(),
                origin: Origin::Disk,
            });
        }
        index
    });
}

fn main() {
    divan::main();
    latency_report();
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Where the index's memory goes, over the throughput files.
fn memory_breakdown() {
    let (mut defs, mut names, mut signatures, mut docs, mut outlines, mut imports) = (0, 0, 0, 0, 0, 0);
    for (_, lang, text) in FILES.iter() {
        let symbols = FileSymbols::extract(*lang, &parse(*lang, text, None), text);
        defs += symbols.definitions.len();
        imports += symbols.imports.len();
        for def in &symbols.definitions {
            names += def.name.len();
            signatures += def.signature.len();
            docs += def.doc().map_or(0, str::len);
            outlines += def.outline().map_or(0, str::len);
        }
    }
    println!(
        "per {:.1} MB of source: {defs} definitions ({} bytes each), {imports} imports; strings: names {:.1} MB, signatures {:.1} MB, docs {:.1} MB, outlines {:.1} MB",
        total_bytes() as f64 / 1e6,
        std::mem::size_of::<weft_lsp::context::Definition>(),
        names as f64 / 1e6,
        signatures as f64 / 1e6,
        docs as f64 / 1e6,
        outlines as f64 / 1e6,
    );
}

fn latency_report() {
    memory_breakdown();
    let root = corpus_root();
    let engine = ContextEngine::new(ContextConfig::default());
    let rss_before = resident_bytes();
    let started = Instant::now();
    engine.set_roots_blocking(vec![root.clone()]);
    let index_seconds = started.elapsed().as_secs_f64();
    let status = engine.status();
    let rss_after = resident_bytes();
    println!("\ncorpus: {}", root.display());
    println!(
        "indexed from disk: {} files, {:.1} MB in {:.1} s ({:.2} MB/s, reading included); {} skipped",
        status.files,
        status.bytes as f64 / 1e6,
        index_seconds,
        status.bytes as f64 / 1e6 / index_seconds,
        status.skipped
    );
    println!(
        "index memory: {:.1} MB estimated heap, {:.1} MB resident growth",
        engine.index_heap_bytes() as f64 / 1e6,
        rss_after.saturating_sub(rss_before) as f64 / 1e6
    );

    let paths = source_files(&root, 1 << 20);
    let step = (paths.len() / LATENCY_FILES).max(1);
    let mut micros = Vec::new();
    let mut snippets = 0;
    let mut cursors = 0;
    for path in paths.iter().step_by(step) {
        let Ok(text) = read_source(path, 1 << 20) else { continue };
        engine.open(path, "", &text);
        // A cursor at the end of the line two thirds into the file, with the
        // server's windows: up to 512 lines before, 128 after.
        let starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .filter(|&i| i < text.len())
            .collect();
        let line = starts.len() * 2 / 3;
        let cursor = starts.get(line + 1).map_or(text.len(), |&next| next - 1);
        let window = starts[line.saturating_sub(512)]..starts.get(line + 129).copied().unwrap_or(text.len());
        for _ in 0..LATENCY_REPEATS {
            let started = Instant::now();
            let retrieval = engine.retrieve(&ContextQuery { path, cursor, window: window.clone() });
            micros.push(started.elapsed().as_secs_f64() * 1e6);
            snippets += retrieval.snippets.len();
        }
        cursors += 1;
        engine.close(path);
    }
    micros.sort_by(f64::total_cmp);
    println!(
        "retrieval at {cursors} cursors x {LATENCY_REPEATS}: p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {:.2} snippets on average",
        percentile(&micros, 0.50) / 1e3,
        percentile(&micros, 0.95) / 1e3,
        percentile(&micros, 0.99) / 1e3,
        micros.last().copied().unwrap_or(0.0) / 1e3,
        snippets as f64 / micros.len().max(1) as f64,
    );
}
