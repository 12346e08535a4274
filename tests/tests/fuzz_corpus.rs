//! Replays the fuzz targets' committed corpora (`fuzz/corpus/<target>/`) and
//! freshly made seeds through the targets' checks, on the stable toolchain and
//! without libFuzzer, so that an input that once broke a property keeps being
//! tried. Running the fuzzer itself: see `fuzz/README.md`.

#[path = "../../fuzz/src/lib.rs"]
mod es_fuzz;
mod reliability_log;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs one input on a thread of its own, named after the input, so that a
/// stack overflow (an abort, which no test can catch) names it too. The stack
/// is the 2 MiB a spawned thread gets by default: stored state must decode on
/// such a thread, and this debug build's frames make deep recursion show here
/// that the fuzzer's 8 MiB main thread hides.
fn passes(check: fn(&[u8]), name: &str, bytes: Vec<u8>) -> bool {
    std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(2 << 20)
        .spawn(move || check(&bytes))
        .expect("a thread for the input")
        .join()
        .is_ok()
}

#[test]
fn every_corpus_input_and_seed_passes_its_targets_checks() {
    let seeds = es_fuzz::seeds();
    let mut failures = Vec::new();
    for target in es_fuzz::TARGETS {
        let check = es_fuzz::target(target);
        let files = corpus(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        let mut inputs: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|path| {
                let bytes = std::fs::read(path).expect("a corpus file is readable");
                let name = path.file_name().expect("a file name").to_string_lossy();
                (format!("fuzz/corpus/{target}/{name}"), bytes)
            })
            .collect();
        inputs.extend(
            seeds
                .iter()
                .filter(|(seed_target, ..)| *seed_target == target)
                .map(|(_, name, bytes)| (format!("{target}: fresh {name}"), bytes.clone())),
        );
        let replayed = inputs.len();
        for (name, bytes) in inputs {
            if !passes(check, &name, bytes) {
                failures.push(name);
            }
        }
        reliability_log::record(reliability_log::Trial {
            fault: &format!("fuzz corpus replay: {target}"),
            backend: "any",
            trials: replayed,
            checked: "no panic, decode errors are Err".into(),
        });
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their checks:\n{}",
        failures.join("\n")
    );
}
