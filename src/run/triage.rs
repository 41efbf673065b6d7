//! Triage of a load phase's deaths, after its traffic: the run's target is lent (stopped; triage
//! starts fresh incarnations of the same launch on the same ports, one at a time), each death is
//! attributed among the exact inputs saved with it, minimised unless its culprit is already in a
//! bucket, and filed; then the run's target is started again for what follows.

use super::load::ToTriage;
use super::{Env, Target};
use crate::triage::DeathRecord;
use crate::triage::phase::TriageSpec;
use crate::triage::records::PhaseTriage;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) async fn triage_deaths(
    env: &Env<'_>,
    target: &mut Target,
    spec: &TriageSpec,
    deaths: Vec<ToTriage>,
    source: Arc<crate::generate::Generator>,
    load: &crate::drive::LoadPhase,
) -> Result<PhaseTriage> {
    let Some(launch) = target.sup.lend().await else { return Ok(PhaseTriage::default()) };
    (env.say)(format!(
        "triage: {} death(s) on fresh incarnations of the target (budget {}, corpus {})",
        deaths.len(),
        humantime::format_duration(spec.budget),
        spec.corpus.display()
    ));
    let stopped = Arc::new(AtomicBool::new(*env.stop.borrow()));
    let (flag, mut stop) = (stopped.clone(), env.stop.clone());
    let bridge = tokio::spawn(async move {
        super::stopped(&mut stop).await;
        flag.store(true, Ordering::SeqCst);
    });
    let (spec2, seed, load, profile) = (spec.clone(), env.seed, load.clone(), env.profile.canonical_source());
    let result = tokio::task::spawn_blocking(move || {
        let store = crate::triage::bucket::Store::open(&spec2.corpus)?;
        let mut opts = spec2.options(seed, &launch.readiness.probe);
        opts.profile = profile;
        let stop = || stopped.load(Ordering::SeqCst) || crate::signals::was_interrupted();
        // The records carry what triage needs; their suspects are regenerated whole (unlike the
        // saved files, no input is too large here), one death at a time.
        let records: Vec<DeathRecord> = deaths
            .iter()
            .map(|d| DeathRecord {
                phase: load.name.clone(),
                n: d.n,
                at: d.at.clone(),
                death: d.death,
                exit: d.exit.clone(),
                target: launch.describe(),
                suspects: Vec::new(),
                hot: d.hot,
                hot_routes: super::load::hot_routes(&d.entries, d.hot),
            })
            .collect();
        let suspects = |i: usize| {
            let d = &deaths[i];
            super::load::exact_inputs(&d.entries, d.hot, source.as_ref(), &load, usize::MAX)
        };
        crate::triage::records::triage_records(&launch, store, opts, &records, &suspects, spec2.budget, &stop)
    })
    .await;
    bridge.abort();
    let t = result??;
    (env.say)(format!(
        "triage: {} of {} death(s) triaged in {:.0} s, {} bucket(s){}",
        t.triaged,
        t.deaths,
        t.seconds,
        t.buckets.len(),
        if t.untriaged > 0 { format!(", {} not reached (minimize --run)", t.untriaged) } else { String::new() }
    ));
    // The run's target again, for the phases that follow.
    if !*env.stop.borrow() {
        let stop = env.stop.clone();
        let stopping = move || *stop.borrow();
        if let Err(e) = target.sup.restart(&stopping).await {
            (env.say)(format!("{e:#}"));
            target.lost = Some(format!("{e:#}"));
        }
    }
    Ok(t)
}
