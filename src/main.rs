//! The `metricstore` binary.
//!
//! ```text
//! metricstore import <file.prom[.zst]>   ingest a Prometheus text file, print stats
//! metricstore --version
//! metricstore --help
//! ```
//!
//! Until the server exists, `import` is the way to see the engine work on real data: it
//! parses the file (zstd-decompressing `.zst`), writes it through `MetricStore::write`,
//! seals the heads and prints what the store holds.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use metricstore::MetricStore;
use metricstore::ingest::prom_text;

const USAGE: &str = "\
metricstore: an in-memory metrics database

Usage:
  metricstore import <file.prom[.zst]>   ingest Prometheus text (with timestamps) and print stats
  metricstore --version                  print the version
  metricstore --help                     print this help
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Import(PathBuf),
    Version,
    Help,
}

/// Parses the arguments after the program name; the error says what is wrong.
fn parse_args(args: &[String]) -> Result<Command, String> {
    match args {
        [] => Err("no command given".into()),
        [flag] if flag == "--help" || flag == "-h" || flag == "help" => Ok(Command::Help),
        [flag] if flag == "--version" || flag == "-V" => Ok(Command::Version),
        [cmd, path] if cmd == "import" => Ok(Command::Import(PathBuf::from(path))),
        [cmd] if cmd == "import" => Err("import: missing <file.prom[.zst]>".into()),
        [cmd, ..] if cmd == "import" => Err("import: expected exactly one file".into()),
        [other, ..] => Err(format!("unknown command {other:?}")),
    }
}

fn open(path: &Path) -> Result<Box<dyn Read>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "zst") {
        let decoder = zstd::Decoder::new(file)
            .map_err(|e| format!("cannot read {} as zstd: {e}", path.display()))?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

fn import(path: &Path) -> Result<(), String> {
    let store = MetricStore::in_memory();
    let start = Instant::now();
    let parsed = prom_text::parse_reader(open(path)?, 0, 100_000, |batch| store.write(&batch))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let took = start.elapsed();
    store.seal_all();
    let stats = store.stats();
    let t = &stats.total;
    println!(
        "imported {}: {} samples in {:.2} s",
        path.display(),
        parsed.samples,
        took.as_secs_f64()
    );
    println!(
        "{} tables, {} series, {} samples, {} chunks",
        stats.tables.len(),
        t.series,
        t.samples,
        t.chunks
    );
    println!(
        "bytes/sample: {:.3} in sealed chunks (timestamps included), {:.3} in total",
        t.chunk_bytes as f64 / t.samples.max(1) as f64,
        t.bytes_per_sample()
    );
    println!("top tables by series:");
    for (name, series) in stats.top_tables_by_series.iter().take(5) {
        println!("  {series:>6}  {name}");
    }
    println!("top tag keys by distinct values:");
    for (table, key, values) in stats.top_tag_keys.iter().take(5) {
        println!("  {values:>6}  {table}.{key}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse_args(&args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            Ok(())
        }
        Ok(Command::Version) => {
            println!("metricstore {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Ok(Command::Import(path)) => import(&path),
        Err(e) => {
            eprint!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_commands_and_names_mistakes() {
        assert_eq!(parse_args(&args(&["--help"])), Ok(Command::Help));
        assert_eq!(parse_args(&args(&["--version"])), Ok(Command::Version));
        assert_eq!(
            parse_args(&args(&["import", "a.prom.zst"])),
            Ok(Command::Import("a.prom.zst".into()))
        );
        assert!(parse_args(&args(&[])).is_err());
        assert!(
            parse_args(&args(&["import"]))
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            parse_args(&args(&["serve"]))
                .unwrap_err()
                .contains("\"serve\"")
        );
    }
}
