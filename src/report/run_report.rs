//! [`RunReport`]: the figures, memory timeline and task stream of one run, as data and JSON.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::exec::RunStats;
pub(crate) use crate::plan::human;
use crate::store::StoreStats;

/// One stage of the plan that ran: a fused run of operations ending in a reduction, persist or
/// write.
///
/// ```
/// let s = spillway::Session::new()?;
/// let x = s.ones::<f64>(&[1_000, 10], [100, 10])?;
/// (&x * 2.0).sum(0)?.compute::<f64>()?;
/// let report = s.last_run_report().unwrap();
/// let first = &report.stages[0];
/// assert_eq!(first.tasks, 10); // one partial sum per chunk
/// assert!(first.fused.iter().any(|op| op.starts_with("mul"))); // ran inside the sum's tasks
/// # Ok::<(), spillway::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct StageSummary {
    /// The stage's name, as its tasks' `stage` in the task stream.
    pub name: String,
    /// Tasks of the stage.
    pub tasks: usize,
    /// Projected bytes of its largest task.
    pub max_task_bytes: u64,
    /// Bytes of its output.
    pub output_bytes: u64,
    /// Operations fused into its tasks, outermost first (empty when nothing was fused).
    pub fused: Vec<String>,
}

/// What one computation did: its figures, the memory timeline sampled while it ran, every
/// task's thread and times, the plan and the memory limit. Returned by
/// [`Session::last_run_report`](crate::Session::last_run_report) after every `compute`,
/// `persist` and write.
///
/// ```
/// use spillway::Session;
/// let s = Session::builder().memory_limit("64MiB").threads(2).build()?;
/// let x = s.random_uniform(&[2_000, 500], [250, 500], 7)?;
/// let m: f64 = (&x * 2.0).mean(None)?.compute_scalar()?;
/// assert!(m > 0.9 && m < 1.1);
///
/// let report = s.last_run_report().expect("a run happened");
/// assert_eq!(report.stats.tasks, report.stats.tasks_total);
/// assert_eq!(report.stats.task_records.len(), report.stats.tasks);
/// assert!(report.max_sampled_reserved_bytes() <= report.stats.peak_reserved_bytes);
/// assert!(report.stats.peak_reserved_bytes <= report.limit_bytes);
///
/// let back = spillway::RunReport::from_json(&report.to_json()?)?;
/// assert_eq!(back, report);
/// let html = report.to_html()?;
/// assert!(html.contains("<svg") && html.contains("Memory per tier") && html.contains("Task stream"));
/// println!("{report}");
/// # Ok::<(), spillway::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RunReport {
    /// What the run delivered: `compute`, `persist`, `zarr write out.zarr (v3, …)`, ….
    pub description: String,
    /// The session's memory limit.
    pub limit_bytes: u64,
    /// Worker threads of the session.
    pub threads: usize,
    /// The plan's stages.
    pub stages: Vec<StageSummary>,
    /// The plan as [`Plan::explain`](crate::Plan::explain) prints it.
    pub plan: String,
    /// The run's figures, memory timeline (`samples`) and task stream (`task_records`).
    pub stats: RunStats,
    /// Bytes written to spill files during the run.
    pub spilled_bytes: u64,
    /// What the session's store held, and its counters, when the run ended.
    pub store: StoreStats,
    /// The process's peak resident set when the run ended (`ru_maxrss`, since the process
    /// started).
    pub peak_rss_bytes: u64,
}

impl RunReport {
    /// The report as one line of JSON (the fields of this struct, `stats.samples` and
    /// `stats.task_records` included).
    ///
    /// # Errors
    /// [`Error::Report`] if serialisation fails (it does not for reports spillway made).
    ///
    /// ```
    /// let s = spillway::Session::new()?;
    /// s.ones::<f64>(&[100], [10])?.sum(None)?.compute_scalar::<f64>()?;
    /// let json = s.last_run_report().unwrap().to_json()?;
    /// assert!(json.starts_with('{') && json.contains("\"samples\""));
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Report {
            action: "write JSON".into(),
            reason: e.to_string(),
        })
    }

    /// Reads a report back from [`to_json`](Self::to_json)'s output.
    ///
    /// # Errors
    /// [`Error::Report`] when the text is not a report's JSON.
    ///
    /// ```
    /// assert!(spillway::RunReport::from_json("{\"description\": 1}").is_err());
    /// ```
    pub fn from_json(json: &str) -> Result<RunReport> {
        serde_json::from_str(json).map_err(|e| Error::Report {
            action: "parse JSON".into(),
            reason: e.to_string(),
        })
    }

    /// Writes [`to_json`](Self::to_json)'s output to a file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    ///
    /// ```
    /// let s = spillway::Session::new()?;
    /// s.ones::<f64>(&[100], [10])?.sum(None)?.compute_scalar::<f64>()?;
    /// let dir = tempfile::tempdir()?;
    /// s.last_run_report().unwrap().write_json(dir.path().join("run.json"))?;
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()?).map_err(|e| Error::io(path, e))
    }

    /// One self-contained HTML page (no scripts, no external resources) with the run's
    /// figures, two SVG charts — memory per tier over time with the limit and the OS's RSS,
    /// and the task stream, one row per thread, coloured by stage — the plan and its stages.
    ///
    /// # Errors
    /// [`Error::Report`] if a chart cannot be drawn.
    ///
    /// ```
    /// let s = spillway::Session::new()?;
    /// s.ones::<f64>(&[1_000], [100])?.sum(None)?.compute_scalar::<f64>()?;
    /// let html = s.last_run_report().unwrap().to_html()?;
    /// assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn to_html(&self) -> Result<String> {
        super::html::page(self)
    }

    /// Writes [`to_html`](Self::to_html)'s page to a file (by convention `*.html`).
    ///
    /// # Errors
    /// As [`to_html`](Self::to_html); [`Error::Io`] when the file cannot be written.
    ///
    /// ```
    /// let s = spillway::Session::new()?;
    /// s.ones::<f64>(&[1_000], [100])?.sum(None)?.compute_scalar::<f64>()?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("run.html");
    /// s.last_run_report().unwrap().write_html(&path)?;
    /// assert!(std::fs::metadata(&path)?.len() > 1000);
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn write_html(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_html()?).map_err(|e| Error::io(path, e))
    }

    /// The most bytes reserved at any memory sample (0 when no timeline was recorded).
    ///
    /// ```
    /// let s = spillway::Session::new()?;
    /// s.ones::<f64>(&[1_000], [100])?.sum(None)?.compute_scalar::<f64>()?;
    /// let r = s.last_run_report().unwrap();
    /// assert!(r.max_sampled_reserved_bytes() <= r.stats.peak_reserved_bytes);
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn max_sampled_reserved_bytes(&self) -> u64 {
        self.stats
            .samples
            .iter()
            .map(|s| s.reserved_bytes)
            .max()
            .unwrap_or(0)
    }

    /// The largest resident set of the process at any memory sample (0 when no timeline was
    /// recorded).
    ///
    /// ```
    /// let s = spillway::Session::new()?;
    /// s.ones::<f64>(&[1_000], [100])?.sum(None)?.compute_scalar::<f64>()?;
    /// assert!(s.last_run_report().unwrap().max_sampled_rss_bytes() > 0);
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn max_sampled_rss_bytes(&self) -> u64 {
        self.stats
            .samples
            .iter()
            .map(|s| s.rss_bytes)
            .max()
            .unwrap_or(0)
    }

    /// The most bytes in spill files at any memory sample (0 when no timeline was recorded).
    ///
    /// ```
    /// let s = spillway::Session::new()?;
    /// s.ones::<f64>(&[1_000], [100])?.sum(None)?.compute_scalar::<f64>()?;
    /// assert_eq!(s.last_run_report().unwrap().max_sampled_disk_bytes(), 0);
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn max_sampled_disk_bytes(&self) -> u64 {
        self.stats
            .samples
            .iter()
            .map(|s| s.disk_bytes)
            .max()
            .unwrap_or(0)
    }

    /// The headline figures as `(name, value)` pairs, in the order the summary and the HTML
    /// page show them.
    ///
    /// ```
    /// let s = spillway::Session::new()?;
    /// s.ones::<f64>(&[1_000], [100])?.sum(None)?.compute_scalar::<f64>()?;
    /// let figures = s.last_run_report().unwrap().figures();
    /// assert_eq!(figures[0].0, "tasks");
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn figures(&self) -> Vec<(&'static str, String)> {
        let st = &self.stats;
        let mut v = vec![
            ("tasks", format!("{} of {}", st.tasks, st.tasks_total)),
            ("wall time", format!("{:.2} s", st.wall_s)),
            ("memory limit", human(self.limit_bytes)),
            ("projected peak", human(st.projected_peak_bytes)),
            (
                "peak reserved",
                format!(
                    "{} ({:.0}% of the limit)",
                    human(st.peak_reserved_bytes),
                    percent(st.peak_reserved_bytes, self.limit_bytes)
                ),
            ),
        ];
        if !st.samples.is_empty() {
            v.push(("peak RSS sampled", human(self.max_sampled_rss_bytes())));
        }
        v.push(("process peak RSS", human(self.peak_rss_bytes)));
        v.push(("demoted", human(st.demoted_bytes)));
        v.push(("spilled to disk", human(self.spilled_bytes)));
        v.push((
            "compression ratio",
            format!("{:.2}", self.store.compression_ratio()),
        ));
        v.push(("threads", self.threads.to_string()));
        v.push((
            "timeline",
            if st.samples.is_empty() {
                "not recorded".to_string()
            } else {
                format!(
                    "{} samples, {} task records",
                    st.samples.len(),
                    st.task_records.len()
                )
            },
        ));
        v
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "run: {}", self.description)?;
        for (name, value) in self.figures() {
            writeln!(f, "  {name}: {value}")?;
        }
        Ok(())
    }
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_and_percent() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(1, 0), 0.0);
    }
}
