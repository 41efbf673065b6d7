//! Request sources and report checks for the load tests against the in-process servers.

use mesher_stress::model::{Generated, HttpRequest, Layer, Payload, RequestSeed, Source};
use std::net::SocketAddr;

/// GETs to a fixed path.
pub struct Gets(pub &'static str);

impl Source for Gets {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        Generated {
            seed: RequestSeed { run: 7, stream, index },
            layer: Layer::Valid,
            payload: Payload::Http(HttpRequest::new(
                mesher_stress::api::match_route("GET", self.0).map(|m| m.route.id),
                "GET",
                self.0.to_string(),
                Vec::new(),
            )),
            trail: Vec::new(),
        }
    }
}

/// Event POSTs with unique messages.
pub struct Events;

impl Source for Events {
    fn generate(&self, stream: u64, index: u64) -> Generated {
        let body = format!("{{\"message\":\"ev-{stream}-{index}\",\"level\":\"error\"}}").into_bytes();
        let mut r = HttpRequest::new(
            Some(mesher_stress::api::RouteId::EventsIngest),
            "POST",
            mesher_stress::api::Route::get(mesher_stress::api::RouteId::EventsIngest).path(&[]),
            body,
        );
        r.headers.push(("x-sentry-auth".into(), b"k".to_vec()));
        Generated {
            seed: RequestSeed { run: 7, stream, index },
            layer: Layer::Valid,
            payload: Payload::Http(r),
            trail: Vec::new(),
        }
    }
}

pub fn http(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Check the consistency rule and return the outcome counts.
pub fn check_consistent(r: &mesher_stress::report::PhaseReport) {
    assert!(r.consistent, "sent {} measured {}", r.requests_sent, r.requests_measured);
    let sum: u64 = r.outcomes.values().sum();
    assert_eq!(sum, r.requests_sent);
    let by_route: u64 = r.routes.iter().map(|x| x.count).sum();
    assert_eq!(by_route, r.requests_sent);
}

/// Run a load phase and build its report, as the `load` command does.
pub async fn run_phase(
    phase: &mesher_stress::drive::LoadPhase,
    source: std::sync::Arc<dyn mesher_stress::model::Source>,
    target: &mesher_stress::drive::TargetAddr,
    ctx: &mesher_stress::drive::PhaseCtx,
) -> anyhow::Result<mesher_stress::report::PhaseReport> {
    mesher_stress::drive::run_phase(phase, source, target, ctx).await.map(mesher_stress::report::PhaseReport::from)
}
