//! The progress bar: an [`indicatif`] bar on stderr for every compute, persist and write of a
//! session that asked for one, fed by the executor's memory samples through [`RunObserver`].
//!
//! ```text
//! persist ==========>          61/120 tasks · 8.4 tasks/s · ETA 7s · mem 250.1 MiB/256.0 MiB (hot 180.0 MiB, zstd 64.2 MiB) · spilled 412.0 MiB · RSS 301.7 MiB
//! ```
//!
//! The memory part is cut to the terminal's width (tasks, rate and ETA come first).
//!
//! As cargo and pip do, the bar is drawn only when stderr is a terminal
//! ([`ProgressMode::Auto`]); [`ProgressMode::Always`] forces it, and when stderr is then not a
//! terminal (a CI log, a file) it prints plain lines, at most one a second, instead of
//! redrawing one line with escape codes.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};

use super::run_report::human;
use crate::exec::{MemorySample, RunObserver, RunStart, RunStats};

/// Whether a session shows a progress bar on stderr while it computes.
///
/// `true` and `false` convert to [`Auto`](Self::Auto) and [`Off`](Self::Off), so
/// `with_progress(true)` reads as it should.
///
/// ```
/// use spillway::{ProgressMode, Session};
/// assert_eq!(ProgressMode::from(true), ProgressMode::Auto);
/// assert_eq!(ProgressMode::default(), ProgressMode::Off);
/// let s = Session::builder().with_progress(true).build()?;         // a bar when stderr is a terminal
/// let t = Session::builder().with_progress(ProgressMode::Always).build()?; // also in CI logs
/// # Ok::<(), spillway::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// No progress output (the default).
    #[default]
    Off,
    /// A bar on stderr when stderr is a terminal; nothing otherwise.
    Auto,
    /// A bar on stderr when it is a terminal, and a plain line a second when it is not.
    Always,
}

impl From<bool> for ProgressMode {
    fn from(on: bool) -> Self {
        if on {
            ProgressMode::Auto
        } else {
            ProgressMode::Off
        }
    }
}

/// Where a run's bar draws: a draw target, and the line log behind it when there is one.
type Target = (ProgressDrawTarget, Option<Arc<LineLog>>);
type TargetFactory = Box<dyn Fn() -> Option<Target> + Send + Sync>;

/// The [`RunObserver`] behind [`ProgressMode`]: one bar per run.
pub(crate) struct ProgressBarObserver {
    target: TargetFactory,
    run: Mutex<Option<Bar>>,
}

/// The bar of the run going on, and what its last message said.
struct Bar {
    bar: ProgressBar,
    limit_bytes: u64,
    last: MemorySample,
    log: Option<Arc<LineLog>>,
}

impl ProgressBarObserver {
    /// An observer drawing on stderr as `mode` says, or `None` for [`ProgressMode::Off`].
    pub(crate) fn for_mode(mode: ProgressMode) -> Option<ProgressBarObserver> {
        let target: TargetFactory = match mode {
            ProgressMode::Off => return None,
            ProgressMode::Auto => Box::new(|| {
                std::io::stderr()
                    .is_terminal()
                    .then(|| (ProgressDrawTarget::stderr_with_hz(10), None))
            }),
            ProgressMode::Always => Box::new(|| {
                Some(if std::io::stderr().is_terminal() {
                    (ProgressDrawTarget::stderr_with_hz(10), None)
                } else {
                    let log = Arc::new(LineLog::new(Duration::from_secs(1), |line| {
                        let _ = writeln!(std::io::stderr().lock(), "{line}");
                    }));
                    let target =
                        ProgressDrawTarget::term_like(Box::new(SharedLog(Arc::clone(&log))));
                    (target, Some(log))
                })
            }),
        };
        Some(ProgressBarObserver::with_target(target))
    }

    fn with_target(target: TargetFactory) -> ProgressBarObserver {
        ProgressBarObserver {
            target,
            run: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Bar>> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The bar's layout: what, how far, how fast, how long still, and where memory is.
fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix} {bar:20} {pos}/{len} tasks · {rate} · ETA {eta} · {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
        let _ = write!(w, "{:.1} tasks/s", state.per_sec());
    })
    .progress_chars("=> ")
}

/// The memory part of the bar: reserved of the limit, per tier, spilled, and the OS's RSS.
pub(crate) fn memory_message(sample: &MemorySample, limit_bytes: u64) -> String {
    format!(
        "mem {}/{} (hot {}, zstd {}) · spilled {} · RSS {}",
        human(sample.reserved_bytes),
        human(limit_bytes),
        human(sample.hot_bytes),
        human(sample.compressed_bytes),
        human(sample.disk_bytes),
        human(sample.rss_bytes)
    )
}

impl RunObserver for ProgressBarObserver {
    fn started(&self, run: &RunStart) {
        let mut slot = self.lock();
        if let Some(old) = slot.take() {
            old.bar.abandon();
        }
        let Some((target, log)) = (self.target)() else {
            return;
        };
        let bar = ProgressBar::with_draw_target(Some(run.total_tasks as u64), target)
            .with_style(style())
            .with_prefix(super::legend::shorten(&run.description, 32));
        *slot = Some(Bar {
            bar,
            limit_bytes: run.limit_bytes,
            last: MemorySample::default(),
            log,
        });
    }

    fn progress(&self, _total_tasks: usize, sample: &MemorySample) {
        if let Some(b) = self.lock().as_mut() {
            b.bar.set_message(memory_message(sample, b.limit_bytes));
            b.bar.set_position(sample.done as u64);
            b.last = sample.clone();
        }
    }

    fn finished(&self, stats: Option<&RunStats>) {
        let Some(b) = self.lock().take() else {
            return;
        };
        match stats {
            Some(st) => b.bar.finish_with_message(format!(
                "done in {:.1} s · peak reserved {} of {} · spilled {}",
                st.wall_s,
                human(st.peak_reserved_bytes),
                human(b.limit_bytes),
                human(b.last.disk_bytes)
            )),
            None => b.bar.abandon_with_message("failed"),
        }
        if let Some(log) = &b.log {
            log.flush_latest();
        }
    }
}

/// Plain lines for a stderr that is not a terminal: each redraw of the bar becomes one line,
/// at most one per `interval`, repeats dropped; the latest line held back by the interval is
/// written when the run ends ([`flush_latest`](Self::flush_latest)).
struct LineLog {
    interval: Duration,
    state: Mutex<LogState>,
    emit: Box<dyn Fn(&str) + Send + Sync>,
}

#[derive(Default)]
struct LogState {
    /// Text of the redraw going on.
    pending: String,
    /// The last line written, and when.
    written: String,
    written_at: Option<Instant>,
    /// A line the interval held back.
    held: Option<String>,
}

impl LineLog {
    fn new(interval: Duration, emit: impl Fn(&str) + Send + Sync + 'static) -> LineLog {
        LineLog {
            interval,
            state: Mutex::new(LogState::default()),
            emit: Box::new(emit),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, s: &str, end_line: bool) {
        let mut st = self.lock();
        st.pending.push_str(s.trim_start_matches('\r'));
        if !end_line {
            return;
        }
        let line = st.pending.trim_end().to_string();
        st.pending.clear();
        if line.is_empty() || line == st.written {
            return;
        }
        let now = Instant::now();
        if st
            .written_at
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            st.held = Some(line);
            return;
        }
        (self.emit)(&line);
        st.written = line;
        st.written_at = Some(now);
        st.held = None;
    }

    /// Writes the line the interval held back, if any.
    fn flush_latest(&self) {
        let mut st = self.lock();
        if let Some(line) = st.held.take()
            && line != st.written
        {
            (self.emit)(&line);
            st.written = line;
            st.written_at = Some(Instant::now());
        }
    }
}

/// The [`TermLike`] face of a shared [`LineLog`]: it cannot move the cursor, so every redraw
/// ends a line.
struct SharedLog(Arc<LineLog>);

impl fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LineLog")
    }
}

impl TermLike for SharedLog {
    fn width(&self) -> u16 {
        200
    }
    fn move_cursor_up(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.push(s, true);
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.push(s, false);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.push("", true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn capturing(interval: Duration) -> (ProgressBarObserver, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let obs = ProgressBarObserver::with_target(Box::new(move || {
            let sink = Arc::clone(&sink);
            let log = Arc::new(LineLog::new(interval, move |l| {
                sink.lock().unwrap().push(l.to_string())
            }));
            let target = ProgressDrawTarget::term_like(Box::new(SharedLog(Arc::clone(&log))));
            Some((target, Some(log)))
        }));
        (obs, lines)
    }

    fn sample(done: usize) -> MemorySample {
        MemorySample {
            t_s: 0.5,
            reserved_bytes: 200 << 20,
            hot_bytes: 150 << 20,
            compressed_bytes: 30 << 20,
            disk_bytes: 300 << 20,
            rss_bytes: 240 << 20,
            running: 2,
            done,
        }
    }

    fn start(total_tasks: usize) -> RunStart {
        RunStart {
            description: "persist".into(),
            total_tasks,
            limit_bytes: 256 << 20,
            projected_peak_bytes: 100 << 20,
        }
    }

    #[test]
    fn the_bar_shows_tasks_rate_eta_memory_per_tier_and_spilled_bytes() {
        let (obs, lines) = capturing(Duration::ZERO);
        obs.started(&start(10));
        obs.progress(10, &sample(3));
        obs.finished(Some(&RunStats {
            tasks: 10,
            tasks_total: 10,
            wall_s: 1.3,
            peak_reserved_bytes: 210 << 20,
            ..Default::default()
        }));
        let lines = lines.lock().unwrap();
        let during = lines
            .iter()
            .find(|l| l.contains("3/10 tasks"))
            .unwrap_or_else(|| panic!("no line at 3 of 10: {lines:#?}"));
        for part in [
            "persist",
            "tasks/s",
            "ETA",
            "mem 200.0 MiB/256.0 MiB",
            "hot 150.0 MiB",
            "zstd 30.0 MiB",
            "spilled 300.0 MiB",
            "RSS 240.0 MiB",
        ] {
            assert!(during.contains(part), "{part:?} missing from {during:?}");
        }
        let last = lines.last().unwrap();
        assert!(
            last.contains("10/10 tasks") && last.contains("done in 1.3 s"),
            "{last:?}"
        );
        assert!(
            last.contains("peak reserved 210.0 MiB of 256.0 MiB"),
            "{last:?}"
        );
    }

    #[test]
    fn a_failed_run_says_so() {
        let (obs, lines) = capturing(Duration::ZERO);
        obs.started(&start(4));
        obs.finished(None);
        assert!(lines.lock().unwrap().last().unwrap().contains("failed"));
    }

    #[test]
    fn plain_lines_come_at_most_once_an_interval_without_repeats_and_end_with_the_last() {
        let (obs, lines) = capturing(Duration::from_secs(3600));
        obs.started(&start(100));
        for done in 0..100 {
            obs.progress(100, &sample(done));
            obs.progress(100, &sample(done));
        }
        obs.finished(Some(&RunStats {
            tasks: 100,
            tasks_total: 100,
            ..Default::default()
        }));
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2, "the first line and the last: {lines:#?}");
        assert!(lines[1].contains("100/100 tasks") && lines[1].contains("done in"));
    }

    #[test]
    fn off_makes_no_observer_and_bools_convert() {
        assert!(ProgressBarObserver::for_mode(ProgressMode::Off).is_none());
        assert!(ProgressBarObserver::for_mode(ProgressMode::Auto).is_some());
        assert_eq!(ProgressMode::from(false), ProgressMode::Off);
        assert_eq!(ProgressMode::from(true), ProgressMode::Auto);
    }
}
