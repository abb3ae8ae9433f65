//! The learning curve: loss against epochs on a log scale (every training step faint, epoch
//! means, validations), and the task's metric (accuracy, exact match or MSE) in a second panel.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{FAMILY, colour, heading, legend_at, reason, size, tick, write_png};
use crate::{EpochRecord, History, Metric, RunInfo, TrainError};

/// Picture size with a metric panel; without one it is [`HEIGHT_LOSS_ONLY`] high.
const SIZE: (u32, u32) = (1000, 760);
/// Height of a learning curve that has only the loss panel.
const HEIGHT_LOSS_ONLY: u32 = 500;

/// Draws `history` into a PNG at `path`, atomically: the loss panel and, when the task
/// measures one, a metric panel. The title names `info`'s program, backend and date.
/// Nothing is written for a history without steps.
///
/// # Errors
/// [`TrainError::Plot`] when it cannot be drawn, [`TrainError::Io`] when it cannot be written;
/// the file at `path` is then left as it was.
pub fn learning_curve(path: &Path, history: &History, info: &RunInfo) -> Result<(), TrainError> {
    if history.step_losses().is_empty() {
        return Ok(());
    }
    write_png(path, picture_size(history), |root| {
        draw(root, history, info)
    })
}

pub(super) fn picture_size(history: &History) -> (u32, u32) {
    match metric_panel(history) {
        Some(_) => SIZE,
        None => (SIZE.0, HEIGHT_LOSS_ONLY),
    }
}

/// What the second panel shows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Panel {
    /// Accuracy and/or exact match, in percent.
    Fractions,
    /// Mean squared error on a log scale (when it is not the loss itself).
    Mse,
}

fn metric_panel(history: &History) -> Option<Panel> {
    let measured = |m: Metric| {
        history
            .epochs
            .iter()
            .any(|e| e.train.get(m).is_some() || e.valid.and_then(|v| v.get(m)).is_some())
    };
    if measured(Metric::Accuracy) || measured(Metric::ExactMatch) {
        return Some(Panel::Fractions);
    }
    // A regression objective's loss is its MSE: a second panel would repeat the first.
    let mse_is_loss = history.epochs.iter().all(|e| {
        e.train
            .mse
            .is_none_or(|m| (m - e.train.loss).abs() <= 1e-9 * m.abs().max(1.0))
    });
    (measured(Metric::Mse) && !mse_is_loss).then_some(Panel::Mse)
}

/// The epoch coordinate of global step `global_step` (1-based) within `record`: epoch `e`
/// spans `(e - 1, e]`.
fn epoch_x(record: &EpochRecord, global_step: usize) -> f64 {
    let steps = record.step_losses.len().max(1);
    let first = record.global_step + 1 - steps.min(record.global_step + 1);
    let done = (global_step + 1).saturating_sub(first) as f64;
    (record.epoch - 1) as f64 + done / steps as f64
}

pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    history: &History,
    info: &RunInfo,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(reason)?;
    let (title, subtitle) = info.heading("learning curve");
    let body = heading(root, &title, &subtitle)?;
    match metric_panel(history) {
        None => loss_panel(&body, history),
        Some(panel) => {
            let (_, height) = body.dim_in_pixel();
            let (top, bottom) = body.split_vertically(height * 56 / 100);
            loss_panel(&top, history)?;
            metric_panel_draw(&bottom, history, panel)
        }
    }
}

fn x_range(history: &History) -> std::ops::Range<f64> {
    let last = history.epochs.last().map_or(1, |e| e.epoch);
    let first = history.epochs.first().map_or(1, |e| e.epoch);
    let (start, end) = ((first - 1) as f64, last as f64);
    // A little room on the right, so that the last epoch's markers are not cut in half.
    start..end + (end - start) * 0.015
}

/// A log range around the positive finite values, spanning at least a factor of 3, with
/// headroom above the data for the legend.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 0.1..1.0;
    }
    let (lo, hi) = if hi / lo < 3.0 {
        let mid = (lo * hi).sqrt();
        (mid / 1.8, mid * 1.8)
    } else {
        (lo / 1.15, hi * 1.15)
    };
    lo..hi * (hi / lo).powf(0.3)
}

/// Tick values for a log axis over `range`: every decade, with 2 and 5 between them when
/// the range spans few decades, and more when it spans less than about one.
fn log_ticks(range: &std::ops::Range<f64>) -> Vec<f64> {
    let decades = (range.end / range.start).log10();
    let mantissas: &[f64] = if decades > 3.5 {
        &[1.0]
    } else if decades > 1.3 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]
    };
    let first = range.start.log10().floor() as i32;
    let last = range.end.log10().ceil() as i32;
    let step = if decades > 7.0 { 2 } else { 1 };
    (first..=last)
        .filter(|k| k % step == 0)
        .flat_map(|k| {
            // Divide for negative powers, so that 3 × 10⁻¹ is exactly 0.3.
            mantissas.iter().map(move |m| {
                if k < 0 {
                    m / 10f64.powi(-k)
                } else {
                    m * 10f64.powi(k)
                }
            })
        })
        .filter(|v| range.contains(v))
        .collect()
}

/// The corner of the plot where the legend covers the fewest of `points`, given as
/// fractions of the plot's width and height (0 = left/bottom); upper right on a tie.
fn quiet_corner(points: impl Iterator<Item = (f64, f64)>) -> SeriesLabelPosition {
    // The legend box covers about 40 % of the width and 45 % of the height.
    let mut counts = [0usize; 4]; // upper right, upper left, lower right, lower left
    for (x, y) in points {
        let (right, left) = (x > 0.58, x < 0.42);
        let (upper, lower) = (y > 0.53, y < 0.47);
        counts[0] += usize::from(right && upper);
        counts[1] += usize::from(left && upper);
        counts[2] += usize::from(right && lower);
        counts[3] += usize::from(left && lower);
    }
    let best = (0..4).min_by_key(|&i| (counts[i], i)).unwrap_or(0);
    match best {
        0 => SeriesLabelPosition::UpperRight,
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::LowerLeft,
    }
}

/// `points` as fractions of the plot: x linear over `x`, y over `y` (logarithmic when `log`).
fn fractions<'p>(
    points: impl Iterator<Item = &'p (f64, f64)> + 'p,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    log: bool,
) -> impl Iterator<Item = (f64, f64)> + 'p {
    let f = move |v: f64| if log { v.ln() } else { v };
    let (y0, y1) = (f(y.start), f(y.end));
    points.map(move |&(px, py)| ((px - x.start) / (x.end - x.start), (f(py) - y0) / (y1 - y0)))
}

fn epoch_label(v: &f64) -> String {
    tick(*v)
}

fn loss_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    history: &History,
) -> Result<(), String> {
    let steps: Vec<(f64, f64)> = history
        .epochs
        .iter()
        .flat_map(|e| {
            let first = e.global_step + 1 - e.step_losses.len().min(e.global_step + 1);
            e.step_losses
                .iter()
                .enumerate()
                .map(move |(i, &loss)| (epoch_x(e, first + i), loss))
        })
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .collect();
    let epochs: Vec<(f64, f64)> = history
        .epochs
        .iter()
        .map(|e| (e.epoch as f64, e.train.loss))
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .collect();
    let valid: Vec<(f64, f64)> = history
        .epochs
        .iter()
        .flat_map(|e| {
            e.mid_epoch_valid
                .iter()
                .map(|(step, m)| (epoch_x(e, *step), m.loss))
                .chain(e.valid.map(|v| (e.epoch as f64, v.loss)))
        })
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .collect();
    let y = log_range(steps.iter().chain(&epochs).chain(&valid).map(|p| p.1));
    let corner = quiet_corner(fractions(
        steps.iter().chain(&epochs).chain(&valid),
        x_range(history),
        y.clone(),
        true,
    ));
    let regression = history.epochs.iter().all(|e| {
        e.train
            .mse
            .is_some_and(|m| (m - e.train.loss).abs() <= 1e-9)
    });
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_right(30)
        .caption("Loss (log scale)", (FAMILY, size::CAPTION))
        .x_label_area_size(48)
        .y_label_area_size(78)
        .build_cartesian_2d(
            x_range(history),
            y.clone().log_scale().with_key_points(log_ticks(&y)),
        )
        .map_err(reason)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(if regression { "loss (MSE)" } else { "loss" })
        .axis_desc_style((FAMILY, size::AXIS))
        .label_style((FAMILY, size::LABEL))
        .x_label_formatter(&epoch_label)
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(reason)?;
    let faint = colour::BLUE.mix(0.3);
    chart
        .draw_series(LineSeries::new(steps, faint.stroke_width(1)))
        .map_err(reason)?
        .label("training loss, each step")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], faint.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            epochs.iter().copied(),
            colour::BLUE.stroke_width(2),
        ))
        .map_err(reason)?;
    chart
        .draw_series(
            epochs
                .iter()
                .map(|&p| Circle::new(p, 4, colour::BLUE.filled())),
        )
        .map_err(reason)?
        .label("training loss, epoch mean")
        .legend(|(x, y)| {
            EmptyElement::at((x + 12, y))
                + PathElement::new([(-12, 0), (12, 0)], colour::BLUE.stroke_width(2))
                + Circle::new((0, 0), 4, colour::BLUE.filled())
        });
    if !valid.is_empty() {
        chart
            .draw_series(LineSeries::new(
                valid.iter().copied(),
                colour::RED.mix(0.6).stroke_width(1),
            ))
            .map_err(reason)?;
        chart
            .draw_series(
                valid
                    .iter()
                    .map(|&p| Circle::new(p, 5, colour::RED.filled())),
            )
            .map_err(reason)?
            .label("validation loss")
            .legend(|(x, y)| Circle::new((x + 12, y), 5, colour::RED.filled()));
    }
    legend_at(&mut chart, corner)
}

fn metric_panel_draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    history: &History,
    panel: Panel,
) -> Result<(), String> {
    let metrics: &[(Metric, &str, RGBColor, RGBColor)] = match panel {
        Panel::Fractions => &[
            (Metric::Accuracy, "accuracy", colour::BLUE, colour::RED),
            (
                Metric::ExactMatch,
                "exact match",
                colour::GREEN,
                colour::PURPLE,
            ),
        ],
        Panel::Mse => &[(Metric::Mse, "MSE", colour::BLUE, colour::RED)],
    };
    let mut lines: Vec<Line> = Vec::new();
    let scale = if panel == Panel::Fractions {
        100.0
    } else {
        1.0
    };
    for &(metric, name, train_colour, valid_colour) in metrics {
        let train: Vec<(f64, f64)> = history
            .epochs
            .iter()
            .filter_map(|e| e.train.get(metric).map(|v| (e.epoch as f64, v * scale)))
            .filter(|p| p.1.is_finite())
            .collect();
        let valid: Vec<(f64, f64)> = history
            .epochs
            .iter()
            .filter_map(|e| {
                e.valid
                    .and_then(|v| v.get(metric))
                    .map(|v| (e.epoch as f64, v * scale))
            })
            .filter(|p| p.1.is_finite())
            .collect();
        if !train.is_empty() {
            lines.push(Line {
                label: format!("training {name}"),
                colour: train_colour,
                validation: false,
                points: train,
            });
        }
        if !valid.is_empty() {
            lines.push(Line {
                label: format!("validation {name}"),
                colour: valid_colour,
                validation: true,
                points: valid,
            });
        }
    }
    let values = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    match panel {
        Panel::Fractions => {
            let lowest = values.fold(100.0f64, f64::min);
            // Zoom onto the values, in steps of 10 %, so that 97 % and 99 % stay apart.
            let lo = ((lowest - 2.0) / 10.0).floor().clamp(0.0, 9.0) * 10.0;
            let caption = if lines.iter().any(|l| l.label.contains("exact")) {
                "Accuracy (per step) and exact match (whole sequence)"
            } else {
                "Accuracy"
            };
            let corner = quiet_corner(fractions(
                lines.iter().flat_map(|l| l.points.iter()),
                x_range(history),
                lo..100.5,
                false,
            ));
            let mut chart = metric_chart(area, caption, history, lo..100.5)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("percent correct")
                .axis_desc_style((FAMILY, size::AXIS))
                .label_style((FAMILY, size::LABEL))
                .x_label_formatter(&epoch_label)
                .y_label_formatter(&|v| format!("{}%", tick(*v)))
                .light_line_style(WHITE.mix(0.0))
                .bold_line_style(BLACK.mix(0.08))
                .draw()
                .map_err(reason)?;
            metric_lines(&mut chart, &lines)?;
            legend_at(&mut chart, corner)
        }
        Panel::Mse => {
            let y = log_range(values);
            let corner = quiet_corner(fractions(
                lines.iter().flat_map(|l| l.points.iter()),
                x_range(history),
                y.clone(),
                true,
            ));
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .margin_right(30)
                .caption("Mean squared error (log scale)", (FAMILY, size::CAPTION))
                .x_label_area_size(48)
                .y_label_area_size(78)
                .build_cartesian_2d(
                    x_range(history),
                    y.clone().log_scale().with_key_points(log_ticks(&y)),
                )
                .map_err(reason)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("MSE")
                .axis_desc_style((FAMILY, size::AXIS))
                .label_style((FAMILY, size::LABEL))
                .x_label_formatter(&epoch_label)
                .y_label_formatter(&|v| tick(*v))
                .light_line_style(WHITE.mix(0.0))
                .bold_line_style(BLACK.mix(0.08))
                .draw()
                .map_err(reason)?;
            metric_lines(&mut chart, &lines)?;
            legend_at(&mut chart, corner)
        }
    }
}

/// One metric of one pass in the metric panel: a line with a marker at every epoch.
struct Line {
    label: String,
    colour: RGBColor,
    /// Validation points are drawn larger.
    validation: bool,
    points: Vec<(f64, f64)>,
}

type LinearChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn metric_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    history: &History,
    y: std::ops::Range<f64>,
) -> Result<LinearChart<'a, DB>, String> {
    ChartBuilder::on(area)
        .margin(12)
        .margin_right(30)
        .caption(caption, (FAMILY, size::CAPTION))
        .x_label_area_size(48)
        .y_label_area_size(78)
        .build_cartesian_2d(x_range(history), y)
        .map_err(reason)
}

fn metric_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    lines: &[Line],
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for line in lines {
        let (colour, points) = (line.colour, &line.points);
        let radius = if line.validation { 5 } else { 4 };
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(reason)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(move |&p| Circle::new(p, radius, colour.filled())),
            )
            .map_err(reason)?
            .label(line.label.as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x + 12, y))
                    + PathElement::new([(-12, 0), (12, 0)], colour.stroke_width(2))
                    + Circle::new((0, 0), radius, colour.filled())
            });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Pixels, png_size};
    use super::*;
    use crate::Metrics;

    fn history(accuracy: bool) -> History {
        let metrics = |loss: f64, acc: f64| Metrics {
            loss,
            accuracy: accuracy.then_some(acc),
            ..Metrics::default()
        };
        History {
            epochs: (1..=4)
                .map(|epoch| EpochRecord {
                    epoch,
                    global_step: epoch * 10,
                    lr: 0.01,
                    train: metrics(1.0 / epoch as f64, 0.5 + 0.1 * epoch as f64),
                    valid: Some(metrics(1.2 / epoch as f64, 0.45 + 0.1 * epoch as f64)),
                    step_losses: (0..10)
                        .map(|i| 1.5 / (epoch as f64 + i as f64 / 10.0))
                        .collect(),
                    mid_epoch_valid: vec![],
                    seconds: 1.0,
                })
                .collect(),
            stopped_early: false,
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            program: "test".into(),
            backend: "flex".into(),
            date: "2025-01-01".into(),
            command: String::new(),
        }
    }

    #[test]
    fn steps_map_into_their_epoch() {
        let h = history(false);
        let e2 = &h.epochs[1]; // global steps 11..=20
        assert!((epoch_x(e2, 11) - 1.1).abs() < 1e-12);
        assert!((epoch_x(e2, 20) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn log_ticks_stay_in_range_and_thin_out_over_many_decades() {
        assert_eq!(log_ticks(&(0.15..0.9)), [0.2, 0.3, 0.4, 0.5, 0.6, 0.8]);
        let few = log_ticks(&(0.05..3.0));
        assert_eq!(few.len(), 6, "{few:?}"); // 0.05 0.1 0.2 0.5 1 2
        assert!((few[0] - 0.05).abs() < 1e-12);
        let many = log_ticks(&(1e-5..2.0));
        assert_eq!(many.len(), 6, "{many:?}"); // 1e-5 … 1
    }

    #[test]
    fn the_legend_goes_where_the_data_is_not() {
        let falling = [(0.1, 0.9), (0.3, 0.6), (0.6, 0.3), (0.9, 0.1)];
        assert_eq!(
            quiet_corner(falling.into_iter()),
            SeriesLabelPosition::UpperRight
        );
        let rising = [(0.1, 0.2), (0.3, 0.8), (0.6, 0.9), (0.9, 0.95)];
        assert_eq!(
            quiet_corner(rising.into_iter()),
            SeriesLabelPosition::LowerRight
        );
    }

    #[test]
    fn accuracy_gets_a_panel_and_a_regression_loss_does_not() {
        assert_eq!(metric_panel(&history(true)), Some(Panel::Fractions));
        assert_eq!(metric_panel(&history(false)), None);
        let mut mse = history(false);
        for e in &mut mse.epochs {
            e.train.mse = Some(e.train.loss);
        }
        assert_eq!(metric_panel(&mse), None);
        for e in &mut mse.epochs {
            e.train.mse = Some(e.train.loss / 2.0);
        }
        assert_eq!(metric_panel(&mse), Some(Panel::Mse));
    }

    #[test]
    fn the_picture_has_a_title_axis_labels_and_ticks() {
        let h = history(true);
        let (w, hgt) = picture_size(&h);
        let px = Pixels::draw(w, hgt, |root| draw(root, &h, &info()));
        let (w, hgt) = (w as usize, hgt as usize);
        // Title band, centred.
        assert!(px.inked((w / 4, 3 * w / 4), (5, 40)) > 300, "no title");
        // The rotated y-axis description and tick labels left of each panel.
        assert!(
            px.inked((0, 30), (100, hgt * 55 / 100)) > 50,
            "no loss axis label"
        );
        assert!(
            px.inked((30, 88), (100, hgt * 55 / 100)) > 100,
            "no loss ticks"
        );
        assert!(
            px.inked((0, 30), (hgt * 62 / 100, hgt - 60)) > 50,
            "no metric axis label"
        );
        // "epoch" under the metric panel's axis.
        assert!(
            px.inked((w / 3, 2 * w / 3), (hgt - 30, hgt)) > 50,
            "no x label"
        );
    }

    #[test]
    fn writes_a_png_of_the_expected_size() {
        let dir = std::env::temp_dir().join(format!("rnn-plot-lc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (accuracy, size) in [(true, SIZE), (false, (SIZE.0, HEIGHT_LOSS_ONLY))] {
            let path = dir.join(format!("lc-{accuracy}.png"));
            learning_curve(&path, &history(accuracy), &info()).unwrap();
            assert_eq!(png_size(&path), size);
        }
        let empty = dir.join("empty.png");
        learning_curve(&empty, &History::default(), &info()).unwrap();
        assert!(!empty.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
