//! `--hdr-log`: an HDR histogram interval log, one histogram per request kind each second, tagged
//! `Tag=register,...`, in the text format the HDR histogram tools (`HistogramLogProcessor`,
//! the HDR histogram plotter, `hdrhistogram::serialization::interval_log`) read.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

/// An open interval log. Timestamps are seconds since the run's start (its `BaseTime`). It is
/// written to a temporary file beside its path and appears there whole at [`HdrLog::finish`]:
/// a run that dies leaves no partial log.
pub struct HdrLog {
    out: BufWriter<NamedTempFile>,
    path: PathBuf,
    serializer: V2DeflateSerializer,
}

impl HdrLog {
    /// Opens the temporary file beside `path` and writes the header.
    pub fn create(path: &Path, started: SystemTime) -> io::Result<HdrLog> {
        let mut out = BufWriter::new(super::temp_file_beside(path)?);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[Logged with lwm2m-swarm {}]",
                env!("CARGO_PKG_VERSION")
            ))
            .add_comment("[Histogram log format version 1.3]")
            .add_comment(
                "[Values in microseconds, from when each request was due; one tag per request kind]",
            )
            .with_start_time(started)
            .with_base_time(started)
            .begin_log_with(&mut out, &mut serializer)?;
        // The legend line the Java writer puts after the header; readers skip it.
        out.write_all(
            b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        )?;
        out.flush()?;
        Ok(HdrLog {
            out,
            path: path.to_path_buf(),
            serializer,
        })
    }

    /// Puts the log in place (replacing a file of that name).
    pub fn finish(self) -> io::Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        super::persist(file, &self.path)
    }

    /// Appends one interval: a histogram per tag.
    pub fn write(
        &mut self,
        start: Duration,
        length: Duration,
        histograms: &[(&str, &Histogram<u64>)],
    ) -> io::Result<()> {
        // A writer with no headers writes nothing but the intervals: one per call keeps no
        // borrow of the file between seconds.
        let mut log =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.out, &mut self.serializer)?;
        for (tag, h) in histograms {
            let tag = Tag::new(tag).expect("request names are valid tags");
            log.write_histogram(h, start, length, Some(tag))
                .map_err(|e| io::Error::other(format!("{e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn hdrhistogram_reads_back_every_interval_with_its_tag() {
        let path = std::env::temp_dir().join(format!("swarm-hdr-{}.hlog", std::process::id()));
        let mut log = HdrLog::create(&path, SystemTime::now()).unwrap();
        let mut a = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let b = a.clone();
        a.record(1500).unwrap();
        a.record(2500).unwrap();
        for second in 0..3 {
            log.write(
                Duration::from_secs(second),
                Duration::from_secs(1),
                &[("register", &a), ("update", &b)],
            )
            .unwrap();
        }
        assert!(!path.exists(), "the log appears only when finished");
        log.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("#[StartTime: "), "{text}");
        assert!(
            text.contains("\"StartTimestamp\",\"Interval_Length\""),
            "{text}"
        );
        let mut tags = Vec::new();
        let mut starts = 0;
        for entry in IntervalLogIterator::new(&bytes) {
            match entry.unwrap() {
                LogEntry::Interval(i) => {
                    let h: Histogram<u64> = Deserializer::new()
                        .deserialize(&mut base64_decode(i.encoded_histogram()).as_slice())
                        .unwrap();
                    let tag = i.tag().unwrap().as_str().to_string();
                    if tag == "register" {
                        assert_eq!(h.len(), 2);
                        assert_eq!(h.max(), a.max());
                        assert!((i.max() - a.max() as f64).abs() < 1.0);
                    } else {
                        assert!(h.is_empty());
                    }
                    assert_eq!(i.duration(), Duration::from_secs(1));
                    tags.push(tag);
                }
                LogEntry::StartTime(_) | LogEntry::BaseTime(_) => starts += 1,
            }
        }
        assert_eq!(starts, 2);
        assert_eq!(tags, ["register", "update"].repeat(3));
        let _ = std::fs::remove_file(path);
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }
}
