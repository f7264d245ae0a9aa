//! Seeing what the engine did: a progress bar while it works, and a report of each run.
//!
//! ```text
//!   executor (coordinator thread)
//!   ├── every 50 ms: MemorySample ──▶ observers: ProgressBar (stderr, opt-in)
//!   │                             └─▶ RunStats.samples        (when record_timeline is on)
//!   └── every task:  TaskRecord   ──▶ RunStats.task_records   (when record_timeline is on)
//!                                          │
//!   Session::last_run_report() ◀── RunReport = RunStats + limit + stages + plan text + store
//!        ├── to_json() / from_json()       data, for notebooks and other tools
//!        └── to_html() / write_html(path)  one self-contained page, two SVG charts:
//!              memory per tier, stacked, with the limit and the OS's RSS   (memory_chart)
//!              which task ran on which thread when, coloured by stage      (task_chart)
//! ```
//!
//! Sampling happens on the coordinator, which wakes at least every interval anyway, so
//! recording adds no thread: a sample costs one read of `/proc/self/statm` and a few atomic
//! loads, a task record one small allocation (`benches/report_overhead.rs` measures it on W1).
//! Recording is on by default and can be switched off with
//! [`SessionBuilder::record_timeline`](crate::SessionBuilder::record_timeline).
//!
//! One job per file: `run_report` holds the data ([`RunReport`]) and its JSON form, `html`
//! assembles the page, `memory_chart` and `task_chart` draw one chart each with plotters' SVG
//! backend, `legend` holds what the two charts share, and `progress` is the progress bar.

mod html;
mod legend;
mod memory_chart;
pub(crate) mod progress;
mod run_report;
mod task_chart;

pub use progress::ProgressMode;
pub use run_report::{RunReport, StageSummary};
