//! Triage of a load phase's deaths, after its traffic: the run's target is lent (stopped; triage
//! starts fresh incarnations of the same launch on the same ports, one at a time), each death is
//! attributed among the exact inputs saved with it, minimised unless its culprit is already in a
//! bucket, and filed; then the run's target is started again for what follows.

use super::{Env, Target};
use crate::triage::DeathRecord;
use crate::triage::phase::TriageSpec;
use crate::triage::session::PhaseTriage;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) async fn triage_deaths(
    env: &Env<'_>,
    target: &mut Target,
    spec: &TriageSpec,
    records: &[(usize, DeathRecord)],
) -> Result<PhaseTriage> {
    let Some(launch) = target.sup.lend().await else { return Ok(PhaseTriage::default()) };
    (env.say)(format!(
        "triage: {} death(s) on fresh incarnations of the target (budget {}, corpus {})",
        records.len(),
        humantime::format_duration(spec.budget),
        spec.corpus.display()
    ));
    let stopped = Arc::new(AtomicBool::new(*env.stop.borrow()));
    let (flag, mut stop) = (stopped.clone(), env.stop.clone());
    let bridge = tokio::spawn(async move {
        super::stopped(&mut stop).await;
        flag.store(true, Ordering::SeqCst);
    });
    let recs: Vec<DeathRecord> = records.iter().map(|(_, r)| r.clone()).collect();
    let (spec2, seed) = (spec.clone(), env.seed);
    let result = tokio::task::spawn_blocking(move || {
        let store = crate::triage::bucket::Store::open(&spec2.corpus)?;
        let opts = spec2.options(seed, &launch.readiness.probe);
        let stop = || stopped.load(Ordering::SeqCst) || crate::signals::was_interrupted();
        crate::triage::session::triage_records(&launch, store, opts, &recs, spec2.budget, &stop)
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
