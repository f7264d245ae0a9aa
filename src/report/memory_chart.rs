//! The memory chart: bytes per tier stacked over time, the memory limit as a dashed line, the
//! OS's resident set on top, and bytes in spill files on a second axis (they are on disk, not
//! in RAM, so they are not stacked with the rest).

use plotters::prelude::*;

use super::RunReport;
use super::legend::{self, FONT, LEGEND_WIDTH, Swatch};
use crate::error::Result;

/// Title of the chart (also the page's heading for it).
pub(crate) const TITLE: &str = "Memory per tier";

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 440;
const MIB: f64 = (1u64 << 20) as f64;

const HOT: RGBColor = RGBColor(31, 119, 180);
const COMPRESSED: RGBColor = RGBColor(148, 103, 189);
const TASKS: RGBColor = RGBColor(255, 187, 120);
const LIMIT: RGBColor = RGBColor(214, 39, 40);
const RSS: RGBColor = RGBColor(20, 20, 20);
const DISK: RGBColor = RGBColor(44, 160, 44);

/// The chart as one `<svg>` element. The report must hold at least one sample.
pub(crate) fn svg(report: &RunReport) -> Result<String> {
    let mut out = String::new();
    draw(report, &mut out).map_err(|e| legend::chart_error("memory", e))?;
    Ok(out)
}

fn draw(
    report: &RunReport,
    out: &mut String,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let samples = &report.stats.samples;
    let mib = |b: u64| b as f64 / MIB;
    let t_end = samples
        .iter()
        .map(|s| s.t_s)
        .fold(report.stats.wall_s, f64::max)
        .max(1e-3);
    let limit = mib(report.limit_bytes);
    let y_top = samples
        .iter()
        .map(|s| {
            mib(s.rss_bytes)
                .max(mib(s.reserved_bytes))
                .max(mib(s.hot_bytes + s.compressed_bytes))
        })
        .fold(limit, f64::max)
        * 1.08;
    let disk_max = samples
        .iter()
        .map(|s| mib(s.disk_bytes))
        .fold(0.0, f64::max);
    let spilled = disk_max > 0.0;

    let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot)
        .caption(TITLE, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(legend::LEFT_AXIS_WIDTH)
        .right_y_label_area_size(legend::RIGHT_AXIS_WIDTH)
        .build_cartesian_2d(0.0..t_end, 0.0..y_top)?
        .set_secondary_coord(0.0..t_end, 0.0..(disk_max * 1.08).max(1.0));
    chart
        .configure_mesh()
        .max_light_lines(0)
        .x_desc("seconds since the run started")
        .y_desc("MiB in RAM")
        .y_label_formatter(&|v| legend::axis_number(*v, y_top))
        .axis_desc_style((FONT, 14))
        .draw()?;
    if spilled {
        chart
            .configure_secondary_axes()
            .y_desc("MiB in spill files")
            .y_label_formatter(&|v| legend::axis_number(*v, disk_max))
            .axis_desc_style((FONT, 14))
            .draw()?;
    }

    // Stacked from the bottom: hot, compressed, then the rest of what is reserved (running
    // tasks' buffers, pooled buffers). Each band is drawn as an area down to zero, the
    // highest first, so the lower ones paint over it.
    let stack_tops = |s: &crate::exec::MemorySample| {
        let tiers = s.hot_bytes + s.compressed_bytes;
        [
            mib(s.reserved_bytes.max(tiers)),
            mib(tiers),
            mib(s.hot_bytes),
        ]
    };
    for (band, colour) in [TASKS, COMPRESSED, HOT].into_iter().enumerate() {
        chart.draw_series(
            AreaSeries::new(
                samples.iter().map(|s| (s.t_s, stack_tops(s)[band])),
                0.0,
                colour.mix(0.85),
            )
            .border_style(colour),
        )?;
    }
    chart.draw_series(DashedLineSeries::new(
        [(0.0, limit), (t_end, limit)],
        10,
        6,
        LIMIT.stroke_width(2),
    ))?;
    chart.draw_series(LineSeries::new(
        samples.iter().map(|s| (s.t_s, mib(s.rss_bytes))),
        RSS.stroke_width(2),
    ))?;
    if spilled {
        chart.draw_secondary_series(DashedLineSeries::new(
            samples.iter().map(|s| (s.t_s, mib(s.disk_bytes))),
            6,
            4,
            DISK.stroke_width(2),
        ))?;
    }

    let mut entries = vec![
        ("hot tier (RAM)".to_string(), Swatch::Fill(HOT)),
        (
            "compressed tier (RAM)".to_string(),
            Swatch::Fill(COMPRESSED),
        ),
        ("running tasks and buffers".to_string(), Swatch::Fill(TASKS)),
        (
            format!(
                "memory limit ({})",
                super::run_report::human(report.limit_bytes)
            ),
            Swatch::Dashed(LIMIT),
        ),
        ("RSS (as the OS counts it)".to_string(), Swatch::Line(RSS)),
    ];
    if spilled {
        entries.push(("spill files (right axis)".to_string(), Swatch::Dashed(DISK)));
    }
    legend::draw(&legend_area, &entries)?;
    root.present()?;
    Ok(())
}
