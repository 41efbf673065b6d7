//! What the test areas share: the built binary, the data files, process and port helpers, and the
//! servers and clients the areas test against (one module each).

pub mod child;
pub mod client;
pub mod crashy;
pub mod db;
pub mod load;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The built `mesher-stress` binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_mesher-stress");

/// A command for the built `mesher-stress` binary.
pub fn bin() -> Command {
    Command::new(BIN)
}

/// `mesher-stress --out OUT run PROFILE`.
pub fn run_cmd(out: impl AsRef<Path>, profile: impl AsRef<Path>) -> Command {
    let mut c = bin();
    c.arg("--out").arg(out.as_ref()).arg("run").arg(profile.as_ref());
    c
}

/// A file of `tests/data/` (pinned digests, schemas).
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(name)
}

/// `xmllint --noout --schema junit-4.xsd FILE` (the JUnit schema CI systems read): Ok, or
/// xmllint's complaint.
pub fn validate_junit(file: &Path) -> Result<(), String> {
    let out = Command::new("xmllint").arg("--noout").arg("--schema").arg(data("junit-4.xsd")).arg(file).output();
    let out = out.unwrap_or_else(|e| {
        panic!(
            "xmllint cannot be run ({e}): install it (Debian/Ubuntu: apt-get install -y libxml2-utils; .ci/run does this)"
        )
    });
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// Whether process `pid` runs; a zombie does not count (it has exited, only its parent has not
/// reaped it yet).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Two distinct ports free right now on 127.0.0.1 (both listeners are held while choosing, so
/// they cannot coincide).
pub fn free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

/// The libtest name of test `name` in the module whose `module_path!()` is `module`
/// (`it::hostile` → `hostile::NAME`): what `--exact` needs to re-execute this binary as one
/// of its own tests.
pub fn test_name(module: &str, name: &str) -> String {
    let path = module.split_once("::").map_or("", |(_, rest)| rest);
    if path.is_empty() { name.to_string() } else { format!("{path}::{name}") }
}
