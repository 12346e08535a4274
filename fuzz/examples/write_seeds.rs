//! Writes the seed inputs of every target into `corpus/<target>/`, beside the
//! inputs the fuzzer found: `cargo run --example write_seeds` in `fuzz/`.
//! Encrypted seeds get fresh nonces, so rerunning rewrites those files.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = es_fuzz::seeds();
    for target in es_fuzz::TARGETS {
        std::fs::create_dir_all(corpus.join(target))?;
    }
    for (target, name, bytes) in &seeds {
        std::fs::write(corpus.join(target).join(name), bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), corpus.display());
    Ok(())
}
