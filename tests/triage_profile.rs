//! A profile with a `fuzz` phase (like profiles/abi-hunt.toml, shortened) through `mesher-stress
//! run`: throwaway PostgreSQL, the built-in target with the service-reply-abi fault, the built-in
//! generators (fuzz-heavy mix), watchdog + triage, the bucket table at the end, exit code 3 (crashed).

use std::process::Command;

#[test]
fn fuzz_phase_profile_ends_with_the_bucket_table() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("crashes");
    let profile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/abi-hunt.toml"))
        .unwrap()
        .replace("duration = \"3m\"", "duration = \"150s\"")
        .replace("max_inputs = 20000", "max_inputs = 6000\nstop_after_buckets = 1")
        .replace("faults = [\"service-reply-abi\", \"oversized-content-length\"]", "faults = [\"service-reply-abi\"]")
        .replace("corpus = \"corpus/crashes\"", &format!("corpus = {:?}", corpus.to_str().unwrap()))
        .replace("gdb = true", "gdb = false")
        .replace("repro_tries = 3", "repro_tries = 1");
    let p = dir.path().join("abi.toml");
    std::fs::write(&p, profile).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mesher-stress"))
        .args(["run", p.to_str().unwrap(), "--out", dir.path().join("run").to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "crashed");
    assert!(stdout.contains("sigsegv-events-ingest"), "bucket table: {stdout}");
    let n = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert!(n >= 1);
}
