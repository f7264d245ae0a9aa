//! What both charts share: colours, the legend column beside a chart, and error mapping.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::Error;

/// Categorical colours for stages (Tableau 10, which stays readable for most colour-blind
/// readers).
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Width of the legend column to the right of a chart, in pixels.
pub(crate) const LEGEND_WIDTH: u32 = 260;

/// Width of the area left of a chart's plot (y labels, thread names), in pixels.
pub(crate) const LEFT_AXIS_WIDTH: u32 = 70;

/// Width of the area right of a chart's plot (the memory chart's spill axis), in pixels. Both
/// charts keep it, so that their time axes line up one above the other.
pub(crate) const RIGHT_AXIS_WIDTH: u32 = 70;

/// An axis label: whole numbers on an axis that reaches 20 or more, one decimal below.
pub(crate) fn axis_number(v: f64, axis_top: f64) -> String {
    if axis_top >= 20.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Font of axis descriptions, legend entries and thread labels.
pub(crate) const FONT: &str = "sans-serif";

/// How an entry of a legend is drawn.
#[derive(Clone, Copy)]
pub(crate) enum Swatch {
    /// A filled square (areas, task bars).
    Fill(RGBColor),
    /// A solid line.
    Line(RGBColor),
    /// A dashed line.
    Dashed(RGBColor),
}

/// Draws a legend, one entry per line from the top of `area`; entries that do not fit are
/// summarised on the last line.
pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Swatch)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const TOP: i32 = 44;
    const STEP: i32 = 22;
    let (_, height) = area.dim_in_pixel();
    let fits = ((height as i32 - TOP - 8) / STEP).max(1) as usize;
    let shown = if entries.len() > fits {
        fits - 1
    } else {
        entries.len()
    };
    let font = (FONT, 13).into_font().color(&BLACK);
    for (i, (label, swatch)) in entries.iter().take(shown).enumerate() {
        let y = TOP + STEP * i as i32;
        match *swatch {
            Swatch::Fill(c) => {
                area.draw(&Rectangle::new([(8, y - 6), (26, y + 6)], c.filled()))?;
            }
            Swatch::Line(c) => {
                area.draw(&PathElement::new(vec![(6, y), (28, y)], c.stroke_width(2)))?;
            }
            Swatch::Dashed(c) => {
                for x in [6, 14, 22] {
                    area.draw(&PathElement::new(
                        vec![(x, y), (x + 5, y)],
                        c.stroke_width(2),
                    ))?;
                }
            }
        }
        area.draw(&Text::new(shorten(label, 34), (34, y - 7), font.clone()))?;
    }
    if shown < entries.len() {
        let y = TOP + STEP * shown as i32;
        area.draw(&Text::new(
            format!("… and {} more", entries.len() - shown),
            (34, y - 7),
            font,
        ))?;
    }
    Ok(())
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Turns a drawing error into the crate's error, naming the chart.
pub(crate) fn chart_error(chart: &str, e: impl std::fmt::Display) -> Error {
    Error::Report {
        action: format!("draw the {chart} chart"),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcdé", 4), "abc…");
        assert_eq!(shorten("ééééé", 2), "é…");
    }
}
