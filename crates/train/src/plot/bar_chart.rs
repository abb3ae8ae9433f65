//! A grouped bar chart on a log scale: one group per category, one bar per series in each (a
//! benchmark's times per case and implementation).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FAMILY, colour, heading, legend_at, reason, size, tick, write_png};
use crate::{RunInfo, TrainError};

/// Picture size in pixels.
const SIZE: (u32, u32) = (1100, 560);

/// What a bar chart shows. `values[s][c]` is series `s` in category `c`; a missing or
/// non-positive value leaves its slot empty.
#[derive(Debug, Clone, Copy)]
pub struct BarChart<'a> {
    /// What the picture shows, e.g. "training step time per case".
    pub title: &'a str,
    /// Description of the y axis (log scale).
    pub y_label: &'a str,
    /// One group of bars per category, labelled under the x axis.
    pub categories: &'a [String],
    /// The legend entry of each series, in bar order within a group.
    pub series: &'a [String],
    /// Per series, per category.
    pub values: &'a [Vec<Option<f64>>],
}

/// Draws `chart` into a PNG at `path`, atomically; `info` names program, backend and date in
/// the title. Nothing is written when there is no positive value.
///
/// # Errors
/// [`TrainError::Plot`] when it cannot be drawn, [`TrainError::Io`] when it cannot be written;
/// the file at `path` is then left as it was.
pub fn bar_chart(path: &Path, chart: &BarChart<'_>, info: &RunInfo) -> Result<(), TrainError> {
    if positive(chart).next().is_none() {
        return Ok(());
    }
    write_png(path, SIZE, |root| draw(root, chart, info))
}

fn positive<'a>(chart: &'a BarChart<'_>) -> impl Iterator<Item = f64> + 'a {
    chart
        .values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// Colours of the series, in order.
const PALETTE: [RGBColor; 6] = [
    colour::BLUE,
    RGBColor(174, 199, 232),
    RGBColor(127, 127, 127),
    RGBColor(255, 127, 14),
    colour::GREEN,
    colour::PURPLE,
];

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &BarChart<'_>,
    info: &RunInfo,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(reason)?;
    let (title, subtitle) = info.heading(chart.title);
    let body = heading(root, &title, &subtitle)?;
    let (lo, hi) = positive(chart).fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Whole decades around the data, and one more on top for the legend.
    let y0 = 10f64.powf(lo.log10().floor());
    let y1 = 10f64.powf(hi.log10().ceil() + 1.0);
    let groups = chart.categories.len().max(1);
    let width = 0.8 / chart.series.len().max(1) as f64;
    let mut plot = ChartBuilder::on(&body)
        .margin(12)
        .margin_right(30)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..groups as f64, (y0..y1).log_scale())
        .map_err(reason)?;
    plot.configure_mesh()
        .y_desc(chart.y_label)
        .axis_desc_style((FAMILY, size::AXIS))
        .label_style((FAMILY, size::LABEL))
        .x_labels(0)
        .y_label_formatter(&|v| tick(*v))
        .disable_x_mesh()
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(reason)?;
    for (s, (name, values)) in chart.series.iter().zip(chart.values).enumerate() {
        let fill = PALETTE[s % PALETTE.len()];
        // Group `c` spans [c, c + 1): its bars side by side in the middle 80 %.
        let bars = values.iter().enumerate().filter_map(|(c, v)| {
            let v = (*v).filter(|v| v.is_finite() && *v > 0.0)?;
            let left = c as f64 + 0.1 + width * s as f64;
            Some(Rectangle::new(
                [(left, y0), (left + width * 0.92, v)],
                fill.filled(),
            ))
        });
        plot.draw_series(bars)
            .map_err(reason)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], fill.filled()));
    }
    // Category names centred under their groups.
    let style = TextStyle::from((FAMILY, size::AXIS).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (c, name) in chart.categories.iter().enumerate() {
        let (x, y) = plot.backend_coord(&(c as f64 + 0.5, y0));
        let (dx, dy) = body.get_base_pixel();
        body.draw_text(name, &style, (x - dx, y - dy + 10))
            .map_err(reason)?;
    }
    legend_at(&mut plot, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Pixels, png_size};
    use super::*;

    #[test]
    fn draws_title_axis_bars_categories_and_legend() {
        let categories = vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let series = vec!["ours".to_string(), "peer".to_string()];
        let values = vec![
            vec![Some(10.0), Some(120.0), None],
            vec![Some(30.0), Some(90.0), Some(2.0)],
        ];
        let chart = BarChart {
            title: "training step time",
            y_label: "ms per step",
            categories: &categories,
            series: &series,
            values: &values,
        };
        let info = RunInfo::default();
        let (w, h) = (SIZE.0 as usize, SIZE.1 as usize);
        let px = Pixels::draw(SIZE.0, SIZE.1, |root| draw(root, &chart, &info));
        assert!(px.inked((w / 3, 2 * w / 3), (5, 40)) > 200, "no title");
        assert!(px.inked((0, 30), (120, h - 120)) > 30, "no y label");
        assert!(
            px.inked((100, w - 40), (h - 40, h)) > 20,
            "no category names"
        );
        assert!(px.inked((w - 250, w - 40), (80, 150)) > 150, "no legend");
        // The plot area holds filled bars (the bars of group B reach well up).
        assert!(px.inked((100, w - 40), (h / 2, h - 60)) > 5000, "no bars");

        let path = std::env::temp_dir().join(format!("rnn-plot-bar-{}.png", std::process::id()));
        bar_chart(&path, &chart, &info).unwrap();
        assert_eq!(png_size(&path), SIZE);
        let _ = std::fs::remove_file(&path);
    }
}
