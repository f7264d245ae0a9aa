//! The task stream: one row per worker thread, one bar per task from its start to its end,
//! coloured by the stage (operation) it belongs to — dask's "task stream" view.

use std::collections::HashMap;

use plotters::prelude::*;

use super::RunReport;
use super::legend::{self, FONT, LEGEND_WIDTH, PALETTE, Swatch};
use crate::error::Result;

/// Title of the chart (also the page's heading for it).
pub(crate) const TITLE: &str = "Task stream";

const WIDTH: u32 = 1100;

/// The chart as one `<svg>` element. The report must hold at least one task record.
pub(crate) fn svg(report: &RunReport) -> Result<String> {
    let mut out = String::new();
    draw(report, &mut out).map_err(|e| legend::chart_error("task stream", e))?;
    Ok(out)
}

fn draw(
    report: &RunReport,
    out: &mut String,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let records = &report.stats.task_records;
    let threads = records
        .iter()
        .map(|r| r.thread + 1)
        .fold(report.threads, usize::max)
        .max(1);
    let t_end = records
        .iter()
        .map(|r| r.end_s)
        .fold(report.stats.wall_s, f64::max)
        .max(1e-3);

    // Stages in plan order, then any stage only the records name; a colour each.
    let mut stages: Vec<(String, usize)> =
        report.stages.iter().map(|s| (s.name.clone(), 0)).collect();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, (name, _)) in stages.iter().enumerate() {
        index.entry(name.clone()).or_insert(i);
    }
    let mut stage_of = Vec::with_capacity(records.len());
    for r in records {
        let i = match index.get(&r.stage) {
            Some(&i) => i,
            None => {
                stages.push((r.stage.clone(), 0));
                index.insert(r.stage.clone(), stages.len() - 1);
                stages.len() - 1
            }
        };
        stages[i].1 += 1;
        stage_of.push(i);
    }
    let colour = |i: usize| PALETTE[i % PALETTE.len()];

    let height = (110 + 34 * threads as u32).clamp(240, 1200);
    let root = SVGBackend::with_string(out, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot)
        .caption(TITLE, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(legend::LEFT_AXIS_WIDTH)
        // As wide as the memory chart's right axis, so that the two time axes line up.
        .right_y_label_area_size(legend::RIGHT_AXIS_WIDTH)
        .build_cartesian_2d(0.0..t_end, 0.0..threads as f64)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("seconds since the run started")
        .axis_desc_style((FONT, 14))
        .draw()?;

    // A small gap ends each bar so that back-to-back tasks of one stage stay apart, and very
    // short tasks get a minimum width so that they stay visible.
    let gap = t_end / 1500.0;
    let min_width = t_end / 2500.0;
    chart.draw_series(records.iter().zip(&stage_of).map(|(r, &stage)| {
        let row = (threads - 1 - r.thread) as f64; // thread 0 on top
        let end = (r.end_s - gap.min((r.end_s - r.start_s) * 0.1)).max(r.start_s + min_width);
        Rectangle::new(
            [(r.start_s, row + 0.14), (end, row + 0.86)],
            colour(stage).filled(),
        )
    }))?;
    let label_font = (FONT, 13).into_font().color(&BLACK);
    for k in 0..threads {
        let (x, y) = chart.backend_coord(&(0.0, (threads - 1 - k) as f64 + 0.5));
        root.draw(&Text::new(
            format!("thread {k}"),
            (x - 62, y - 7),
            label_font.clone(),
        ))?;
    }

    let entries: Vec<(String, Swatch)> = stages
        .iter()
        .enumerate()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(i, (name, n))| (format!("{name} ({n})"), Swatch::Fill(colour(i))))
        .collect();
    legend::draw(&legend_area, &entries)?;
    root.present()?;
    Ok(())
}
