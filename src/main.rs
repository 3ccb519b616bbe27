//! The `medsegdiff` command line (see `src/cli`).

fn main() {
    if let Err(e) = medsegdiff::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
