//! The standard kernel suite (`medsegdiff::bench::suite`): `cargo bench --bench kernels [-- FILTER] [--json FILE]`.
//! Prints the table (ms, GFLOP/s, GB/s, % of measured peak); with `--json FILE` also writes SPEC §6 bench JSON.

use medsegdiff::bench::{peak, suite, table, to_json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).cloned();
    let filter = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with('-') && (*i == 0 || args[i - 1] != "--json"))
        .map(|(_, a)| a.clone());
    println!("adapter: {}", medsegdiff::gpu::gpu().describe());
    let pk = peak();
    let results = suite(filter.as_deref());
    print!("{}", table(&results, &pk));
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&to_json(&results, &pk))?)?;
        println!("wrote {path}");
    }
    Ok(())
}
