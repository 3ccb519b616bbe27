//! `medsegdiff` subcommands (clap). The CLI uses `anyhow` with context; the library returns typed errors.

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::gpu::Gpu;

#[derive(Parser)]
#[command(name = "medsegdiff", version, about = "MedSegDiff on a from-scratch wgpu/WGSL engine")]
pub struct Cli {
    /// Adapter to use: an index from `medsegdiff info` or part of its name (default: MEDSEGDIFF_ADAPTER, else the
    /// high-performance adapter).
    #[arg(long, global = true)]
    pub adapter: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Print the adapters wgpu sees, the one in use, and its limits.
    ///
    /// Example: `medsegdiff info`, `medsegdiff --adapter llvmpipe info`
    Info,
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Info => info(cli.adapter.as_deref()),
    }
}

fn info(adapter: Option<&str>) -> Result<()> {
    let all = Gpu::list_adapters();
    println!("adapters:");
    for a in &all {
        println!("{}", crate::gpu::format_summary(a));
    }
    let g = Gpu::init(adapter)?;
    println!("using: {}", g.describe());
    println!("limits:");
    print!("{}", g.describe_limits());
    Ok(())
}
