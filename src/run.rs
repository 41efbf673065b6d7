//! `mesher-stress run PROFILE`: the main job.
use crate::cli::Global;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The profile (TOML), e.g. profiles/smoke.toml.
    pub profile: PathBuf,
}

pub async fn main(args: RunArgs, _g: &Global) -> Result<u8> {
    let p = crate::profile::Profile::load(&args.profile)?;
    anyhow::bail!("run of {} is under construction", p.name)
}
