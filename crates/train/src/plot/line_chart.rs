//! A line chart of named series over a shared x axis: a prediction against its target.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FAMILY, colour, heading, legend_at, reason, size, tick, write_png};
use crate::{RunInfo, TrainError};

/// Picture size in pixels.
const SIZE: (u32, u32) = (1100, 520);

/// One named line of a [`LineChart`].
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Its legend entry.
    pub name: &'a str,
    /// `(x, y)` points, in drawing order.
    pub points: &'a [(f64, f64)],
}

/// What a line chart shows: its title (after the program's name), axis descriptions and
/// series. The first series is drawn thick in blue, the second thinner in red on top of it
/// (target and prediction), then green and purple.
#[derive(Debug, Clone, Copy)]
pub struct LineChart<'a> {
    /// What the picture shows, e.g. "cos target and prediction on the test stream".
    pub title: &'a str,
    /// Description of the x axis.
    pub x_label: &'a str,
    /// Description of the y axis.
    pub y_label: &'a str,
    /// The lines.
    pub series: &'a [Series<'a>],
}

/// Draws `chart` into a PNG at `path`, atomically; `info` names program, backend and date in
/// the title. Nothing is written when no series has two points.
///
/// # Errors
/// [`TrainError::Plot`] when it cannot be drawn, [`TrainError::Io`] when it cannot be written;
/// the file at `path` is then left as it was.
pub fn line_chart(path: &Path, chart: &LineChart<'_>, info: &RunInfo) -> Result<(), TrainError> {
    if chart.series.iter().all(|s| s.points.len() < 2) {
        return Ok(());
    }
    write_png(path, SIZE, |root| draw(root, chart, info))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &LineChart<'_>,
    info: &RunInfo,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(reason)?;
    let (title, subtitle) = info.heading(chart.title);
    let body = heading(root, &title, &subtitle)?;
    let points = || {
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let bounds = |pick: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = points()
            .map(|p| pick(&p))
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > hi {
            (0.0, 1.0)
        } else if lo == hi {
            (lo - 1.0, hi + 1.0)
        } else {
            (lo, hi)
        }
    };
    let (x0, x1) = bounds(|p| p.0);
    let (y0, y1) = bounds(|p| p.1);
    // Headroom above the data for the legend.
    let pad = (y1 - y0) * 0.08;
    let mut plot = ChartBuilder::on(&body)
        .margin(12)
        .margin_right(30)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + 4.0 * pad))
        .map_err(reason)?;
    plot.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .axis_desc_style((FAMILY, size::AXIS))
        .label_style((FAMILY, size::LABEL))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(reason)?;
    let styles = [
        (colour::BLUE.mix(0.45), 5),
        (colour::RED.mix(1.0), 2),
        (colour::GREEN.mix(1.0), 2),
        (colour::PURPLE.mix(1.0), 2),
    ];
    for (series, &(colour, width)) in chart.series.iter().zip(styles.iter().cycle()) {
        plot.draw_series(LineSeries::new(
            series.points.iter().copied(),
            colour.stroke_width(width),
        ))
        .map_err(reason)?
        .label(series.name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(width)));
    }
    legend_at(&mut plot, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Pixels, png_size};
    use super::*;

    #[test]
    fn draws_title_axes_and_legend() {
        let target: Vec<(f64, f64)> = (0..200)
            .map(|i| (i as f64 * 0.1, (i as f64 * 0.1).cos()))
            .collect();
        let prediction: Vec<(f64, f64)> = target.iter().map(|&(x, y)| (x, 0.9 * y)).collect();
        let series = [
            Series {
                name: "target",
                points: &target,
            },
            Series {
                name: "prediction",
                points: &prediction,
            },
        ];
        let chart = LineChart {
            title: "prediction",
            x_label: "t",
            y_label: "value",
            series: &series,
        };
        let info = RunInfo::default();
        let (w, h) = (SIZE.0 as usize, SIZE.1 as usize);
        let px = Pixels::draw(SIZE.0, SIZE.1, |root| draw(root, &chart, &info));
        assert!(px.inked((w / 3, 2 * w / 3), (5, 40)) > 200, "no title");
        assert!(px.inked((0, 30), (120, h - 120)) > 30, "no y label");
        assert!(px.inked((w / 3, 2 * w / 3), (h - 30, h)) > 10, "no x label");
        // The legend box in the upper right corner holds text.
        assert!(px.inked((w - 250, w - 40), (80, 150)) > 200, "no legend");

        let path = std::env::temp_dir().join(format!("rnn-plot-line-{}.png", std::process::id()));
        line_chart(&path, &chart, &info).unwrap();
        assert_eq!(png_size(&path), SIZE);
        let _ = std::fs::remove_file(&path);
    }
}
