//! The run report agrees with the run and with the memory report; its JSON round-trips; its
//! HTML page is well-formed, self-contained and holds both charts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use spillway::io::zarr::ZarrWriteOptions;
use spillway::{MemorySample, RunObserver, RunReport, RunStart, RunStats, Session, StageSummary};

const MIB: u64 = 1 << 20;

fn session(limit: &str) -> Session {
    Session::builder()
        .memory_limit(limit)
        .threads(2)
        .build()
        .unwrap()
}

/// Checks what holds for every recorded report: the timeline is ordered and inside the run,
/// every task is recorded once, the peak covers every sample and stays under the limit.
fn check_timeline(r: &RunReport) {
    let st = &r.stats;
    assert_eq!(st.tasks, st.tasks_total, "every task ran");
    assert_eq!(st.task_records.len(), st.tasks, "every task recorded once");
    assert!(
        st.samples.len() >= 2,
        "a sample at the start and one at the end"
    );
    assert_eq!(st.samples[0].done, 0);
    assert_eq!(st.samples.last().unwrap().done, st.tasks);
    assert_eq!(st.samples.last().unwrap().running, 0);
    for w in st.samples.windows(2) {
        assert!(w[0].t_s <= w[1].t_s, "samples in time order");
        assert!(w[0].done <= w[1].done, "tasks done never go down");
    }
    let eps = 1e-6;
    assert!(st.samples.last().unwrap().t_s <= st.wall_s + eps);
    for t in &st.task_records {
        assert!(0.0 <= t.start_s && t.start_s <= t.end_s && t.end_s <= st.wall_s + eps);
        assert!(t.thread < r.threads, "{t:?}");
        assert!(
            r.stages.iter().any(|s| s.name == t.stage),
            "task stage {:?} is one of the plan's",
            t.stage
        );
    }
    assert_eq!(
        r.stages.iter().map(|s| s.tasks).sum::<usize>(),
        st.tasks_total,
        "stage task counts add up"
    );
    assert!(r.max_sampled_reserved_bytes() <= st.peak_reserved_bytes);
    assert!(st.peak_reserved_bytes <= r.limit_bytes);
    for s in &st.samples {
        assert!(s.hot_bytes + s.compressed_bytes <= r.limit_bytes, "{s:?}");
    }
}

#[test]
fn a_compute_report_agrees_with_its_plan_and_the_memory_report() {
    let s = session("64MiB");
    let x = s.random_uniform(&[4_000, 1_000], [250, 1_000], 3).unwrap();
    let y = ((&x * 2.0) + 1.0).mean(0).unwrap();
    let plan = y.plan().unwrap();
    y.compute::<f64>().unwrap();

    let r = s.last_run_report().unwrap();
    check_timeline(&r);
    assert_eq!(r.description, "compute");
    assert_eq!(r.limit_bytes, 64 * MIB);
    assert_eq!(r.threads, 2);
    assert_eq!(r.stats.tasks_total, plan.num_tasks());
    assert_eq!(r.stats.projected_peak_bytes, plan.projected_peak_bytes());
    assert_eq!(r.stages.len(), plan.num_stages());
    assert_eq!(r.plan, plan.explain());
    assert_eq!(s.last_run(), Some(r.stats.clone()));

    let m = s.memory_report();
    assert_eq!(m.limit_bytes, r.limit_bytes);
    assert!(r.stats.peak_reserved_bytes <= m.peak_reserved_bytes);
    assert_eq!(m.store, r.store, "nothing ran since");
    assert!(r.peak_rss_bytes <= m.peak_rss_bytes);
    assert!(r.max_sampled_rss_bytes() <= m.peak_rss_bytes + 64 * MIB);
}

#[test]
fn a_persist_larger_than_the_limit_spills_and_the_report_shows_it() {
    let s = session("16MiB");
    // 48 MiB of random values (which compress poorly) in 2 MiB chunks, three times the limit.
    let x = s.random_uniform(&[6_144, 1_024], [256, 1_024], 5).unwrap();
    let kept = x.persist().unwrap();
    let r = s.last_run_report().unwrap();
    check_timeline(&r);
    assert_eq!(r.description, "persist");
    let m = s.memory_report();
    assert_eq!(m.store, r.store, "the report's store is the session's");
    let last = r.stats.samples.last().unwrap();
    assert_eq!(last.hot_bytes, m.store.hot_bytes);
    assert_eq!(last.compressed_bytes, m.store.compressed_bytes);
    assert_eq!(last.disk_bytes, m.store.disk_bytes);
    assert!(r.spilled_bytes > 0, "48 MiB under a 16 MiB limit spills");
    assert!(r.max_sampled_disk_bytes() > 0);
    assert!(r.spilled_bytes <= m.store.bytes_spilled);
    assert!(r.stats.demoted_bytes > 0);

    // Reading it back is a run of its own, with its own report.
    let total: f64 = kept.sum(None).unwrap().compute_scalar().unwrap();
    assert!(total > 0.0);
    let r2 = s.last_run_report().unwrap();
    check_timeline(&r2);
    assert_eq!(r2.description, "compute");
    assert_eq!(
        r2.spilled_bytes,
        s.memory_report().store.bytes_spilled - m.store.bytes_spilled
    );
}

#[test]
fn a_write_report_names_its_sink() {
    let s = session("64MiB");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.zarr");
    let x = s.ones::<f64>(&[1_000, 100], [250, 100]).unwrap();
    let stats = x.to_zarr(&path, &ZarrWriteOptions::default()).unwrap();
    let r = s.last_run_report().unwrap();
    check_timeline(&r);
    assert!(r.description.starts_with("zarr write"), "{}", r.description);
    assert!(r.description.contains("w.zarr"), "{}", r.description);
    assert_eq!(r.stats, stats, "write_to returns the report's figures");
}

#[test]
fn a_parquet_write_report_says_write_to_even_under_a_path_that_says_write() {
    let s = session("64MiB");
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("write_out");
    std::fs::create_dir(&sub).unwrap();
    let x = s.ones::<f64>(&[1_000, 3], [250, 3]).unwrap();
    x.to_parquet(
        sub.join("w.parquet"),
        &spillway::io::parquet::ParquetWriteOptions::default(),
    )
    .unwrap();
    let r = s.last_run_report().unwrap();
    check_timeline(&r);
    assert!(
        r.description.starts_with("write to parquet"),
        "{}",
        r.description
    );
}

#[test]
fn json_round_trips_exactly() {
    let s = session("64MiB");
    let x = s.random_normal(&[2_000, 300], [200, 300], 9).unwrap();
    x.std(0, 1.0).unwrap().compute::<f64>().unwrap();
    let r = s.last_run_report().unwrap();
    let json = r.to_json().unwrap();
    let back = RunReport::from_json(&json).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.to_json().unwrap(), json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in [
        "description",
        "limit_bytes",
        "stages",
        "plan",
        "stats",
        "store",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(
        v["stats"]["samples"].as_array().unwrap().len(),
        r.stats.samples.len()
    );
    assert!(RunReport::from_json("not json").is_err());
    assert!(matches!(
        RunReport::from_json("{}"),
        Err(spillway::Error::Report { .. })
    ));
}

/// Checks that every tag opened is closed in order (void elements and `<.../>` aside), that
/// entities are well-formed, and returns the names of the elements seen.
fn check_well_formed(html: &str) -> Vec<String> {
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt]);
        let after = &rest[lt + 1..];
        let gt = after.find('>').expect("every tag ends");
        let tag = &after[..gt];
        rest = &after[gt + 1..];
        if tag.starts_with('!') {
            continue; // <!DOCTYPE html>
        }
        assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name.trim(), "tags nest");
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(!name.is_empty(), "tag without a name: {tag:?}");
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "attribute quotes balance in {tag:?}"
        );
        seen.push(name.clone());
        if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    seen
}

fn check_text(text: &str) {
    assert!(!text.contains('>'), "a bare '>' in text {text:?}");
    for (i, _) in text.match_indices('&') {
        let entity: String = text[i + 1..].chars().take_while(|&c| c != ';').collect();
        assert!(
            ["amp", "lt", "gt", "quot", "apos", "#39"].contains(&entity.as_str()),
            "unknown entity &{entity}; in {text:?}"
        );
    }
}

fn check_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import",
    ] {
        assert!(!lower.contains(bad), "{bad} in the page");
    }
    for (i, _) in lower.match_indices("http") {
        assert!(
            lower[i..].starts_with("http://www.w3.org/2000/svg"),
            "only the SVG namespace may be a URL: {}",
            &html[i..(i + 60).min(html.len())]
        );
    }
}

#[test]
fn the_html_page_is_well_formed_self_contained_and_has_both_charts() {
    let s = session("16MiB");
    let x = s.random_uniform(&[4_096, 1_024], [256, 1_024], 1).unwrap();
    let kept = x.persist().unwrap();
    let r = s.last_run_report().unwrap();
    let html = r.to_html().unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    let elements = check_well_formed(&html);
    check_self_contained(&html);
    assert_eq!(html.matches("<svg").count(), 2, "two charts");
    for title in ["Memory per tier", "Task stream"] {
        // As a heading and as the chart's own caption.
        assert!(html.matches(title).count() >= 2, "{title}");
    }
    for legend in [
        "hot tier (RAM)",
        "compressed tier (RAM)",
        "memory limit (16.0 MiB)",
        "RSS (as the OS counts it)",
        "spill files (right axis)",
        "thread 0",
        "thread 1",
        "persist (16)",
    ] {
        assert!(html.contains(legend), "{legend} missing");
    }
    assert!(elements.iter().filter(|e| *e == "rect").count() >= r.stats.tasks);
    assert!(elements.contains(&"polyline".to_string()) || elements.contains(&"path".to_string()));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.html");
    r.write_html(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), html);
    drop(kept);
}

#[test]
fn without_a_timeline_the_report_keeps_its_figures_and_says_what_is_missing() {
    let s = Session::builder()
        .memory_limit("64MiB")
        .record_timeline(false)
        .build()
        .unwrap();
    let x = s.ones::<f64>(&[2_000, 100], [200, 100]).unwrap();
    let n = x.sum(0).unwrap().plan().unwrap().num_tasks();
    x.sum(0).unwrap().compute::<f64>().unwrap();
    let r = s.last_run_report().unwrap();
    assert_eq!(r.stats.tasks, n);
    assert!(r.stats.samples.is_empty() && r.stats.task_records.is_empty());
    let html = r.to_html().unwrap();
    check_well_formed(&html);
    check_self_contained(&html);
    assert!(!html.contains("<svg"));
    assert_eq!(html.matches("Not recorded").count(), 2);
}

#[derive(Default)]
struct Watch {
    started: AtomicUsize,
    samples: AtomicUsize,
    succeeded: AtomicUsize,
    failed: AtomicUsize,
}

impl RunObserver for Watch {
    fn started(&self, run: &RunStart) {
        assert!(run.total_tasks > 0 && run.limit_bytes == 64 * MIB);
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn progress(&self, _total: usize, _sample: &MemorySample) {
        self.samples.fetch_add(1, Ordering::SeqCst);
    }
    fn finished(&self, stats: Option<&RunStats>) {
        match stats {
            Some(_) => self.succeeded.fetch_add(1, Ordering::SeqCst),
            None => self.failed.fetch_add(1, Ordering::SeqCst),
        };
    }
}

#[test]
fn observers_see_every_run_start_and_end_and_a_failed_run_keeps_the_last_report() {
    let watch = Arc::new(Watch::default());
    let s = Session::builder()
        .memory_limit("64MiB")
        .observer(Arc::clone(&watch) as Arc<dyn RunObserver>)
        .with_progress(true) // not a terminal under `cargo test`: silent, but wired in
        .build()
        .unwrap();
    let x = s.ones::<f64>(&[1_000, 10], [100, 10]).unwrap();
    x.sum(None).unwrap().compute_scalar::<f64>().unwrap();
    let before = s.last_run_report().unwrap();

    let bad = x.map(|v: f64| -> f64 {
        if v > 0.0 {
            panic!("refusing {v}")
        }
        v
    });
    assert!(bad.sum(None).unwrap().compute_scalar::<f64>().is_err());
    assert_eq!(watch.started.load(Ordering::SeqCst), 2);
    assert_eq!(watch.succeeded.load(Ordering::SeqCst), 1);
    assert_eq!(watch.failed.load(Ordering::SeqCst), 1);
    assert!(watch.samples.load(Ordering::SeqCst) >= 2);
    assert_eq!(s.last_run_report(), Some(before));
}

#[test]
fn stage_summaries_match_the_plan() {
    let s = session("64MiB");
    let x = s.ones::<f64>(&[1_000, 100], [250, 100]).unwrap();
    let y = ((&x * 2.0).sin().unwrap()).mean(1).unwrap();
    y.compute::<f64>().unwrap();
    let r = s.last_run_report().unwrap();
    let fused: Vec<&StageSummary> = r.stages.iter().filter(|s| !s.fused.is_empty()).collect();
    assert!(
        !fused.is_empty(),
        "the element-wise chain was fused: {:#?}",
        r.stages
    );
    assert!(r.plan.contains("fused:"));
    assert!(format!("{r}").contains("tasks: "));
}
