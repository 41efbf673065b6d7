//! The phase's HdrHistogram interval log on disk: one corrected histogram per second, all routes,
//! every second of the phase however long (the in-memory timeline merges, this file does not).

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use std::io::Write;
use std::time::{Duration, SystemTime};

pub(super) struct IntervalLog {
    file: std::fs::File,
    serializer: V2DeflateSerializer,
}

impl IntervalLog {
    /// Create the log at `path` and write its header.
    pub(super) fn create(path: &std::path::Path) -> std::io::Result<IntervalLog> {
        let mut file = std::fs::File::create(path)?;
        let mut serializer = V2DeflateSerializer::new();
        let now = SystemTime::now();
        {
            let mut w = IntervalLogWriterBuilder::new()
                .add_comment("mesher-stress latency (corrected, microseconds), one histogram per second")
                .with_start_time(now)
                .with_base_time(now)
                .begin_log_with(&mut file, &mut serializer)?;
            w.write_comment(
                "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"",
            )?;
        }
        Ok(IntervalLog { file, serializer })
    }

    /// Append second `second` (1-based) of the phase; a histogram that cannot be serialised is
    /// left out rather than half-written.
    pub(super) fn second(&mut self, second: u64, h: &Histogram<u64>) {
        let mut buf = Vec::new();
        let start = Duration::from_secs(second - 1);
        let ok = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut buf, &mut self.serializer)
            .ok()
            .and_then(|mut w| w.write_histogram(h, start, Duration::from_secs(1), None).ok());
        if ok.is_some() {
            let _ = self.file.write_all(&buf);
        }
    }

    /// Flush what was written to disk (a checkpoint's readers see every closed second).
    pub(super) fn sync_data(&self) {
        let _ = self.file.sync_data();
    }

    /// Flush data and metadata (the phase ended).
    pub(super) fn sync_all(&self) {
        let _ = self.file.sync_all();
    }
}
