//! `mesher-stress report RUN_DIR` (re-render report.html and junit.xml from report.json) and
//! `mesher-stress report compare A B` (regressions of run B against baseline A).

use super::Global;
use crate::report::{RunReport, compare, render_files};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReportArgs {
    /// A run directory (holding report.json); report.html and junit.xml are written beside it.
    #[arg(required = true)]
    pub run_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<ReportCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Compare a run with a baseline run: per route throughput, p50 and p99 over the per-interval
    /// figures (Mann–Whitney U). Exit 0 no regression, 1 regression, 2 unreadable input.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a report.json or a run directory holding one.
    pub baseline: PathBuf,
    /// The run to judge: a report.json or a run directory holding one.
    pub current: PathBuf,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// The `[baseline]` settings as flags (defaults as in profiles/README.md).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Regression settings (the profile's [baseline] keys)")]
pub struct SettingsArgs {
    /// Significance level of the Mann–Whitney test [default: 0.01].
    #[arg(long, value_name = "P")]
    pub alpha: Option<f64>,
    /// Smallest relative worsening that counts, as a fraction (0.2 = 20 %) [default: 0.2].
    #[arg(long, value_name = "FRACTION")]
    pub min_change: Option<f64>,
    /// Smallest absolute p50 increase that counts [default: 1ms].
    #[arg(long, value_name = "DURATION", value_parser = crate::util::duration::parse)]
    pub min_p50_delta: Option<std::time::Duration>,
    /// Smallest absolute p99 increase that counts [default: 5ms].
    #[arg(long, value_name = "DURATION", value_parser = crate::util::duration::parse)]
    pub min_p99_delta: Option<std::time::Duration>,
    /// Intervals starting within this much of a phase are left out [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = crate::util::duration::parse)]
    pub warmup: Option<std::time::Duration>,
    /// Intervals with fewer requests of a route are left out of its latency [default: 10].
    #[arg(long, value_name = "N")]
    pub min_requests: Option<u64>,
    /// Fewer usable intervals on either side: insufficient data, no verdict [default: 6].
    #[arg(long, value_name = "N")]
    pub min_intervals: Option<usize>,
}

impl SettingsArgs {
    /// `base` with the given flags applied, validated.
    pub fn apply(&self, base: &compare::BaselineSettings) -> Result<compare::BaselineSettings> {
        let mut s = base.clone();
        if let Some(v) = self.alpha {
            s.alpha = v;
        }
        if let Some(v) = self.min_change {
            s.min_change = v;
        }
        if let Some(v) = self.min_p50_delta {
            s.min_p50_delta = v;
        }
        if let Some(v) = self.min_p99_delta {
            s.min_p99_delta = v;
        }
        if let Some(v) = self.warmup {
            s.warmup = v;
        }
        if let Some(v) = self.min_requests {
            s.min_requests = v;
        }
        if let Some(v) = self.min_intervals {
            s.min_intervals = v;
        }
        s.validate().map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("baseline.", "--").replace('_', "-")))?;
        Ok(s)
    }
}

/// `mesher-stress report RUN_DIR`: re-render report.html and junit.xml from report.json;
/// `mesher-stress report compare A B`: compare two runs.
pub async fn main(args: ReportArgs, g: &Global) -> Result<u8> {
    if let Some(ReportCommand::Compare(c)) = args.command {
        return compare_main(c, g);
    }
    let run_dir = args.run_dir.context("a run directory is required")?;
    let path = run_dir.join("report.json");
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let report: RunReport =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a mesher-stress report", path.display()))?;
    render_files(&run_dir, &report)?;
    if !g.quiet {
        println!("{}\n{}", run_dir.join("report.html").display(), run_dir.join("junit.xml").display());
    }
    Ok(crate::exit::SUCCESS)
}

/// `report compare A B`: the table (or `--json`), exit 0 / 1 (regression) / 2 (unreadable input).
fn compare_main(args: CompareArgs, g: &Global) -> Result<u8> {
    let usage = |e: anyhow::Error| {
        eprintln!("error: {e:#}");
        Ok(crate::exit::USAGE)
    };
    let settings = match args.settings.apply(&compare::BaselineSettings::default()) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let (bpath, base) = match compare::read_report(&args.baseline) {
        Ok(x) => x,
        Err(e) => return usage(e.context("the baseline (first argument)")),
    };
    let (_, cur) = match compare::read_report(&args.current) {
        Ok(x) => x,
        Err(e) => return usage(e.context("the current run (second argument)")),
    };
    let c = compare::compare(&base, &bpath, &cur, &settings);
    if g.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else if g.quiet {
        println!("{}", c.summary());
    } else {
        c.print_table(&mut std::io::stdout())?;
    }
    Ok(if c.regressed() { crate::exit::FAILED } else { crate::exit::SUCCESS })
}
