//! The HTML page of a run report: figures, the two charts inline as SVG, the plan and its
//! stages. Self-contained: no scripts, no stylesheets or fonts from elsewhere, so it opens
//! offline and can be attached to an issue.

use std::fmt::Write;

use super::run_report::human;
use super::{RunReport, memory_chart, task_chart};
use crate::error::Result;

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1140px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px}\
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 12px;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
pre{background:#f6f6f6;padding:10px;overflow-x:auto}.note{color:#666}";

/// The page for `report`.
pub(crate) fn page(report: &RunReport) -> Result<String> {
    let st = &report.stats;
    let mut h = String::with_capacity(64 * 1024 + 160 * st.task_records.len());
    let title = format!("spillway run report: {}", report.description);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );

    h.push_str("<table>\n");
    for (name, value) in report.figures() {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(&value)
        );
    }
    h.push_str("</table>\n");

    let _ = writeln!(h, "<h2>{}</h2>", memory_chart::TITLE);
    if st.samples.is_empty() {
        h.push_str(NOT_RECORDED);
    } else {
        let _ = writeln!(
            h,
            "<p class=\"note\">Bytes the engine reserved, stacked by where they are, sampled \
             every 50 ms; the memory limit bounds their sum. The RSS line is the process's \
             resident set as the OS reports it. Spill files are on disk and use the right \
             axis.</p>"
        );
        h.push_str(&memory_chart::svg(report)?);
        h.push('\n');
    }

    let _ = writeln!(h, "<h2>{}</h2>", task_chart::TITLE);
    if st.task_records.is_empty() {
        h.push_str(NOT_RECORDED);
    } else {
        let _ = writeln!(
            h,
            "<p class=\"note\">One row per worker thread, one bar per task from its start to \
             its end, coloured by stage; gaps are time a thread waited for memory or \
             inputs.</p>"
        );
        h.push_str(&task_chart::svg(report)?);
        h.push('\n');
    }

    h.push_str(
        "<h2>Stages</h2>\n<table>\n<tr><th>stage</th><th>tasks</th>\
                <th>largest task (projected)</th><th>output</th><th>fused</th></tr>\n",
    );
    for s in &report.stages {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&s.name),
            s.tasks,
            escape(&human(s.max_task_bytes)),
            escape(&human(s.output_bytes)),
            escape(&s.fused.join(" ← "))
        );
    }
    h.push_str("</table>\n");
    let _ = write!(
        h,
        "<h2>Plan</h2>\n<pre>{}</pre>\n<p class=\"note\">Made by spillway {}.</p>\n</body>\n</html>\n",
        escape(&report.plan),
        env!("CARGO_PKG_VERSION")
    );
    Ok(h)
}

const NOT_RECORDED: &str = "<p class=\"note\">Not recorded: the session was built with \
                            <code>record_timeline(false)</code>.</p>\n";

/// Text made safe inside HTML elements and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{MemorySample, RunStats, TaskRecord};
    use crate::report::StageSummary;

    /// A report made by hand, with what real runs rarely have: a zero wall time, a task on a
    /// thread beyond the session's count, a stage the plan does not list, markup in names,
    /// and more stages than the legend has room for.
    fn odd_report() -> RunReport {
        let stages: Vec<StageSummary> = (0..40)
            .map(|i| StageSummary {
                name: format!("stage <{i}> & co"),
                tasks: 1,
                max_task_bytes: 1,
                output_bytes: 1,
                fused: vec!["a<b".into()],
            })
            .collect();
        let mut task_records: Vec<TaskRecord> = stages
            .iter()
            .map(|s| TaskRecord {
                label: s.name.clone(),
                stage: s.name.clone(),
                thread: 0,
                start_s: 0.0,
                end_s: 0.0,
                reserved_bytes: 0,
            })
            .collect();
        task_records.push(TaskRecord {
            label: "stray".into(),
            stage: "not in the plan".into(),
            thread: 5,
            start_s: 0.0,
            end_s: 0.0,
            reserved_bytes: 0,
        });
        RunReport {
            description: "write to <odd> \"path\"".into(),
            limit_bytes: 0,
            threads: 1,
            stages,
            plan: "plan <with> & markup".into(),
            stats: RunStats {
                tasks: 41,
                tasks_total: 41,
                samples: vec![MemorySample::default()],
                task_records,
                ..Default::default()
            },
            spilled_bytes: 0,
            store: Default::default(),
            peak_rss_bytes: 0,
        }
    }

    #[test]
    fn odd_reports_still_draw_and_escape() {
        let html = page(&odd_report()).unwrap();
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("thread 5"), "rows for every thread seen");
        assert!(html.contains("… and "), "the legend says what it left out");
        assert!(!html.contains("<odd>") && !html.contains("<with>") && !html.contains("<0>"));
        assert!(html.contains("plan &lt;with&gt; &amp; markup"));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
