//! Files that must survive a crash or a kill of the tool: written to a temporary file in the same
//! directory, flushed to disk, then renamed over the destination (readers see the old or the new
//! file, never half of one).

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically (temp file + fsync + rename + fsync of the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Write what `fill` writes to `path` atomically, streamed through a buffer (a large report is
/// never held in memory as one string).
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, tmp);
    let written = fill(&mut w).and_then(|_| w.flush());
    let tmp = w.into_inner().map_err(|e| e.into_error());
    written
        .and(tmp)
        .and_then(|tmp| tmp.as_file().sync_all().map(|_| tmp))
        .with_context(|| {
            format!(
                "cannot write {} (disk full or read-only?); the previous version, if any, is intact",
                path.display()
            )
        })?
        .persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Serialise `value` as pretty JSON and write it atomically (streamed).
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic_with(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
}
