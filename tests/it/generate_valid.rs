//! Valid outputs are valid: every route's valid requests route correctly and satisfy the spec
//! validator; WebSocket scripts too; events have the intended size distribution; the corpus
//! seeds are valid; the mix parses strictly; the id pool keeps stateful routes collision-free.

use mesher_stress::api::{ROUTES, RouteId, WsPath, match_route};
use mesher_stress::db::Fixtures;
use mesher_stress::db::fixtures::SeedOptions;
use mesher_stress::generate::strategy;
use mesher_stress::generate::valid::{self, Ctx};
use mesher_stress::generate::{GenOptions, Generator, IdPool, Mix, rng, validate};
use mesher_stress::model::{Generated, HttpRequest, Layer, Payload, Source, WsScript};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::collections::BTreeSet;
use std::sync::Arc;

fn fixtures() -> Fixtures {
    Fixtures::plan(&SeedOptions::default())
}

fn ctx() -> Ctx {
    let f = fixtures();
    Ctx::new(f.clone(), GenOptions::default(), Arc::new(IdPool::new(&f)))
}

#[test]
fn every_route_yields_valid_requests() {
    let c = ctx();
    let f = fixtures();
    for route in ROUTES.iter() {
        let mut seen_routes = BTreeSet::new();
        for seed in 0..300u64 {
            let mut r = rng::from_u64(seed ^ (route.number as u64) << 32);
            let (req, _) = valid::request(&mut r, &c, route.id);
            let path = req.target.split('?').next().unwrap();
            let m = match_route(&req.method, path).expect("routes");
            assert_eq!(Some(m.route.id), req.route);
            validate::check_request(&req, &f).unwrap_or_else(|e| panic!("{}: {e}\n{req:?}", route.name));
            seen_routes.insert(m.route.id);
        }
        // Stateful routes may settle to their fallback; all others generate themselves.
        match route.id {
            RouteId::MemberRemove | RouteId::AlertRuleDelete | RouteId::MembersAdd => {}
            id => assert_eq!(seen_routes, BTreeSet::from([id]), "{}", route.name),
        }
    }
}

/// The valid layer writes bodies straight to bytes; the JSON layer builds the same generators'
/// tree. Both must be the same request for the same seed (and leave the RNG in the same state),
/// for every route and every size class of event.
#[test]
fn bodies_written_as_bytes_equal_the_tree_serialised() {
    let f = fixtures();
    let large = GenOptions { medium_event_ratio: 0.3, large_event_ratio: 0.3, ..GenOptions::default() };
    for opts in [GenOptions::default(), large] {
        let (a, b) = (
            Ctx::new(f.clone(), opts.clone(), Arc::new(IdPool::new(&f))),
            Ctx::new(f.clone(), opts.clone(), Arc::new(IdPool::new(&f))),
        );
        for route in ROUTES.iter() {
            for seed in 0..200u64 {
                let (mut ra, mut rb) = (rng::from_u64(seed), rng::from_u64(seed));
                let (tree_req, tree) = valid::request(&mut ra, &a, route.id);
                let byte_req = valid::request_bytes(&mut rb, &b, route.id);
                assert_eq!(tree_req, byte_req, "{} seed {seed}", route.name);
                assert_eq!(tree.is_some(), !byte_req.body.is_empty(), "{}", route.name);
                assert_eq!(rng::next_u64(&mut ra), rng::next_u64(&mut rb), "{} seed {seed}: RNG drift", route.name);
            }
        }
    }
}

#[test]
fn generator_valid_layer_stays_valid_over_thousands_of_indexes() {
    let f = fixtures();
    let g = Generator::new(9, f.clone(), Mix::only(Layer::Valid), GenOptions::default());
    let mut members_added = BTreeSet::new();
    for i in 0..5000 {
        let item = g.generate(i % 4, i);
        assert_eq!(item.layer, Layer::Valid);
        assert!(item.trail.is_empty());
        let Payload::Http(req) = &item.payload else { panic!("valid layer is HTTP") };
        validate::check_request(req, &f).unwrap_or_else(|e| panic!("index {i}: {e}\n{req:?}"));
        if req.route == Some(RouteId::MembersAdd) {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let user = v["user_id"].as_str().unwrap().to_string();
            assert!(!f.member_users.contains(&user), "fixture members are never re-added");
            assert!(members_added.insert(user), "a free user is added at most once (no observe calls)");
        }
    }
}

#[test]
fn destructive_routes_spare_the_fixtures_other_routes_use() {
    let c = ctx();
    let f = fixtures();
    for seed in 0..500 {
        let mut r = rng::from_u64(seed);
        let (del, _) = valid::request(&mut r, &c, RouteId::IssueDelete);
        let id = match_route("POST", &del.target).unwrap().args[0].to_string();
        assert!(c.sacrificial_issues.contains(&id));
        for other in [RouteId::IssueResolve, RouteId::IssueEvents, RouteId::EventDetail, RouteId::IssueAssign] {
            let (req, _) = valid::request(&mut r, &c, other);
            let path = req.target.split('?').next().unwrap();
            let arg = match_route(&req.method, path).unwrap().args[0].to_string();
            assert!(!c.sacrificial_issues.contains(&arg));
            if other == RouteId::EventDetail {
                assert!(c.safe_events.contains(&arg));
            }
        }
        let (rev, _) = valid::request(&mut r, &c, RouteId::ApiKeyRevoke);
        let key = match_route("POST", &rev.target).unwrap().args[0].to_string();
        assert_eq!(key, f.api_keys.last().unwrap().0);
        let (ing, _) = valid::request(&mut r, &c, RouteId::EventsIngest);
        let used = ing.header("x-sentry-auth").or(ing.header("authorization")).unwrap();
        assert_ne!(used, f.api_keys.last().unwrap().1.as_bytes());
    }
    // With an empty pool, rule deletes and member removes settle on their creating routes.
    let mut r = rng::from_u64(1);
    assert_eq!(valid::request(&mut r, &c, RouteId::AlertRuleDelete).0.route, Some(RouteId::AlertRulesCreate));
    let before = c.ids.snapshot().free_users.len();
    assert_eq!(valid::request(&mut r, &c, RouteId::MemberRemove).0.route, Some(RouteId::MembersAdd));
    assert_eq!(c.ids.snapshot().free_users.len(), before - 1);
}

#[test]
fn id_pool_follows_created_ids() {
    let f = fixtures();
    let c = Ctx::new(f.clone(), GenOptions::default(), Arc::new(IdPool::new(&f)));
    let mut r = rng::from_u64(3);
    let (add, _) = valid::request(&mut r, &c, RouteId::MembersAdd);
    let user: serde_json::Value = serde_json::from_slice(&add.body).unwrap();
    let user = user["user_id"].as_str().unwrap().to_string();
    assert!(!c.ids.snapshot().free_users.contains(&user));
    let mid = "abcdefab-0000-4000-8000-000000000001";
    c.ids.observe(&add, 201, format!("{{\"id\":\"{mid}\"}}").as_bytes());
    assert_eq!(c.ids.snapshot().memberships, vec![(mid.to_string(), user.clone())]);
    let (rm, _) = valid::request(&mut r, &c, RouteId::MemberRemove);
    assert_eq!(rm.route, Some(RouteId::MemberRemove));
    assert!(rm.target.contains(mid));
    c.ids.observe(&rm, 200, b"{\"status\":\"ok\",\"affected\":1}");
    assert!(c.ids.snapshot().free_users.contains(&user), "removed member's user is free again");
    // A failed add returns its user.
    let (add2, _) = valid::request(&mut r, &c, RouteId::MembersAdd);
    let n = c.ids.snapshot().free_users.len();
    c.ids.observe(&add2, 500, b"{}");
    assert_eq!(c.ids.snapshot().free_users.len(), n + 1);
    // Rules: created ids are deleted, fixture rules never.
    let (create, _) = valid::request(&mut r, &c, RouteId::AlertRulesCreate);
    c.ids.observe(&create, 201, b"{\"id\":\"abcdefab-0000-4000-8000-000000000002\"}");
    let (del, _) = valid::request(&mut r, &c, RouteId::AlertRuleDelete);
    assert!(del.target.contains("abcdefab-0000-4000-8000-000000000002"));
    let (keys, _) = valid::request(&mut r, &c, RouteId::ApiKeysCreate);
    c.ids.observe(&keys, 201, b"{\"key_value\":\"mshr_x\"}");
    assert_eq!(c.ids.api_key(7).as_deref(), Some("mshr_x"));
}

#[test]
fn websocket_scripts_are_valid() {
    let c = ctx();
    let f = fixtures();
    for seed in 0..300 {
        for kind in [WsPath::Ingest, WsPath::Stream] {
            let s = valid::ws_script(&mut rng::from_u64(seed), &c, kind);
            validate::check_ws(&s, &f).unwrap_or_else(|e| panic!("{e}: {s:?}"));
        }
    }
    // The ws layer's unmutated scripts are the valid ones.
    let g = Generator::new(4, f.clone(), Mix::only(Layer::Ws), GenOptions::default());
    let mut plain = 0;
    for i in 0..400 {
        let item = g.generate(0, i);
        if let Payload::Ws(s) = &item.payload
            && item.trail.is_empty()
        {
            validate::check_ws(s, &f).unwrap();
            plain += 1;
        }
    }
    assert!(plain > 40 && plain < 200, "about a quarter stay valid: {plain}");
}

#[test]
fn events_are_mostly_small_with_a_long_tail() {
    let o = GenOptions::default();
    let mut sizes: Vec<usize> = (0..3000).map(|s| valid::event(&mut rng::from_u64(s), &o).to_bytes().len()).collect();
    sizes.sort();
    let median = sizes[sizes.len() / 2];
    assert!(median < 2048, "median {median}");
    assert!(*sizes.last().unwrap() > 16 * 1024, "largest {}", sizes.last().unwrap());
    assert!(*sizes.last().unwrap() <= o.max_event_bytes * 2);
    let large = sizes.iter().filter(|&&s| s > 16 * 1024).count();
    assert!((20..300).contains(&large), "large events: {large}");
    for s in 0..500 {
        validate::check_event(&valid::event(&mut rng::from_u64(s), &o).to_value()).unwrap();
    }
}

#[test]
fn strategies_yield_schema_valid_values_and_shrink() {
    let f = fixtures();
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[5; 32]));
    for _ in 0..20 {
        let mut tree = strategy::event(GenOptions::default()).new_tree(&mut runner).unwrap();
        validate::check_event(&tree.current()).unwrap();
        let start = mesher_stress::generate::shrink::size(&tree.current());
        let mut steps = 0;
        while tree.simplify() {
            steps += 1;
            if steps > 50 {
                break;
            }
        }
        assert!(mesher_stress::generate::shrink::size(&tree.current()) < start);
        assert!(tree.complicate());
    }
    use mesher_stress::api::BodyKind as B;
    let cases: Vec<(B, strategy::JsonStrategy)> = vec![
        (B::AddMember, strategy::add_member(&f)),
        (B::MemberRole, strategy::member_role()),
        (B::ApiKeyLabel, strategy::api_key_label()),
        (B::Settings, strategy::settings()),
        (B::AlertRule, strategy::alert_rule()),
        (B::Toggle, strategy::toggle()),
        (B::Assign, strategy::assign(&f)),
        (B::BulkEvent, strategy::bulk_event(GenOptions::default())),
    ];
    for (kind, s) in cases {
        // Bulk events are the slow case (up to 100 events each, in a debug build).
        let n = if kind == B::BulkEvent { 20 } else { 100 };
        for _ in 0..n {
            let v = s.new_tree(&mut runner).unwrap().current();
            validate::check_body(kind, &v, &f).unwrap_or_else(|e| panic!("{kind:?}: {e}: {v}"));
        }
    }
    for _ in 0..50 {
        let v = strategy::stream_filter().new_tree(&mut runner).unwrap().current();
        assert_eq!(v["type"], "subscribe");
        let q = strategy::query(RouteId::EventsTags, &f).new_tree(&mut runner).unwrap().current();
        assert!(q["key"].is_string() && q["value"].is_string());
        let req = strategy::request(RouteId::SettingsUpdate, &f, GenOptions::default()).new_tree(&mut runner).unwrap();
        validate::check_request(&req.current(), &f).unwrap();
    }
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/seeds")
}

#[test]
fn corpus_seeds_cover_every_route_and_are_valid() {
    let f = fixtures();
    let mut names: Vec<&str> = ROUTES.iter().map(|r| r.name).collect();
    names.extend(["ws-ingest", "ws-stream"]);
    for name in names {
        let dir = corpus_dir().join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name} has no seeds");
        for file in files {
            let text = std::fs::read(&file).unwrap();
            if name.starts_with("ws-") {
                let s: WsScript = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                validate::check_ws(&s, &f).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            } else {
                let g: Generated = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                assert_eq!(g.route_name(), name, "{}", file.display());
                let Payload::Http(req): Payload = g.payload else { panic!("http seed") };
                let req: HttpRequest = req;
                validate::check_request(&req, &f).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            }
        }
    }
    // The generator takes them as mutation bases.
    let g = Generator::new(1, f, Mix::only(Layer::Json), GenOptions::default()).with_corpus(&corpus_dir()).unwrap();
    assert_eq!(g.generate(0, 0), g.generate(0, 0));
}

#[test]
fn mix_parses_strictly() {
    #[derive(serde::Deserialize)]
    struct P {
        mix: Mix,
    }
    let p: P = toml::from_str(
        "mix = { valid = 0.7, json = 0.2, http = 0.1, ws = 0.0, routes = { \"dashboard-health\" = 5.0, \"ws-stream\" = 2.0 } }",
    )
    .unwrap();
    p.mix.validate().unwrap();
    assert_eq!(p.mix.route_weight("dashboard-health"), 5.0);
    assert_eq!(p.mix.route_weight("storage"), 1.0);
    assert!(toml::from_str::<P>("mix = { valid = 1.0, bogus = 1.0 }").is_err());
    let bad: P = toml::from_str("mix = { routes = { \"no-such-route\" = 1.0 } }").unwrap();
    assert!(bad.mix.validate().unwrap_err().to_string().contains("no-such-route"));
    let neg: P = toml::from_str("mix = { valid = -1.0 }").unwrap();
    assert!(neg.mix.validate().is_err());
    // Route weights steer the choice.
    let mut m = Mix::only(Layer::Valid);
    for r in ROUTES.iter() {
        m.routes.insert(r.name.to_string(), 0.0);
    }
    m.routes.insert("storage".into(), 1.0);
    let g = Generator::new(1, fixtures(), m, GenOptions::default());
    for i in 0..100 {
        assert_eq!(g.generate(0, i).route_name(), "storage");
    }
    // `"*"` weighs every route not listed: a phase focused on two routes.
    let focused: P =
        toml::from_str("mix = { valid = 1.0, json = 0.0, http = 0.0, routes = { \"*\" = 0.0, \"storage\" = 1.0, \"dashboard-health\" = 1.0 } }")
            .unwrap();
    focused.mix.validate().unwrap();
    assert_eq!(focused.mix.route_weight("issues-list"), 0.0);
    let g = Generator::new(1, fixtures(), focused.mix, GenOptions::default());
    let names: std::collections::BTreeSet<&str> = (0..200).map(|i| g.generate(0, i).route_name()).collect();
    assert_eq!(names, ["dashboard-health", "storage"].into_iter().collect());
    // Nothing left to draw is a validation error (not a panic when the run starts).
    let empty: P = toml::from_str("mix = { valid = 1.0, routes = { \"*\" = 0.0 } }").unwrap();
    assert!(empty.mix.validate().unwrap_err().to_string().contains("weight 0"));
}
