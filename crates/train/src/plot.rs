//! PNG line plots: the learning curve (training loss per step in grey, per epoch in blue,
//! validation loss per epoch in red) and plain series (prediction against target). No text is
//! drawn, so no font is needed; what the colours mean is in the docs of each function.

use std::path::Path;

use plotters::prelude::*;
use rnn_atomic::Staging;

use crate::{History, TrainError};

/// Draws `history` into a PNG at `path`, atomically.
///
/// # Errors
/// [`TrainError::Plot`] when it cannot be drawn, [`TrainError::Io`] when it cannot be written;
/// the file at `path` is then left as it was.
pub fn learning_curve(path: &Path, history: &History) -> Result<(), TrainError> {
    let steps = history.step_losses();
    if steps.is_empty() {
        return Ok(());
    }
    let staging = Staging::new(path).map_err(TrainError::io(path))?;
    let draw_error = |e: &dyn std::fmt::Display| TrainError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    {
        let root = BitMapBackend::new(staging.path(), (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&e))?;
        let finite = steps.iter().copied().filter(|v| v.is_finite());
        let max = finite.clone().fold(f64::MIN, f64::max).max(1e-9);
        let min = finite.fold(f64::MAX, f64::min).min(max - 1e-9).max(0.0);
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0f64..steps.len() as f64, min..max)
            .map_err(|e| draw_error(&e))?;
        chart
            .plotting_area()
            .draw(&Rectangle::new(
                [(0.0, min), (steps.len() as f64, max)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| draw_error(&e))?;
        chart
            .draw_series(LineSeries::new(
                steps.iter().enumerate().map(|(i, &v)| (i as f64, v)),
                RGBColor(180, 180, 180),
            ))
            .map_err(|e| draw_error(&e))?;
        let at = |e: &crate::EpochRecord| e.global_step as f64;
        chart
            .draw_series(LineSeries::new(
                history.epochs.iter().map(|e| (at(e), e.train.loss)),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| draw_error(&e))?;
        chart
            .draw_series(LineSeries::new(
                history
                    .epochs
                    .iter()
                    .filter_map(|e| e.valid.map(|v| (at(e), v.loss))),
                RED.stroke_width(2),
            ))
            .map_err(|e| draw_error(&e))?;
        root.present().map_err(|e| draw_error(&e))?;
    }
    staging.commit().map_err(TrainError::io(path))
}

/// Draws series sharing one x axis (their index) into a PNG at `path`, atomically: the first
/// in red, the second in blue, then green, black. The sin → cos example plots target and
/// prediction this way.
///
/// # Errors
/// [`TrainError::Plot`] when it cannot be drawn, [`TrainError::Io`] when it cannot be written;
/// the file at `path` is then left as it was.
pub fn series_png(path: &Path, series: &[&[f64]]) -> Result<(), TrainError> {
    let len = series.iter().map(|s| s.len()).max().unwrap_or(0);
    if len < 2 {
        return Ok(());
    }
    let staging = Staging::new(path).map_err(TrainError::io(path))?;
    let draw_error = |e: &dyn std::fmt::Display| TrainError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    {
        let root = BitMapBackend::new(staging.path(), (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&e))?;
        let values = series
            .iter()
            .flat_map(|s| s.iter().copied())
            .filter(|v| v.is_finite());
        let max = values.clone().fold(f64::MIN, f64::max);
        let min = values.fold(f64::MAX, f64::min);
        let (min, max) = if max > min {
            (min, max)
        } else {
            (min - 1.0, max + 1.0)
        };
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0f64..(len - 1) as f64, min..max)
            .map_err(|e| draw_error(&e))?;
        chart
            .plotting_area()
            .draw(&Rectangle::new(
                [(0.0, min), ((len - 1) as f64, max)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| draw_error(&e))?;
        let colors = [RED, BLUE, GREEN, BLACK];
        for (s, color) in series.iter().zip(colors.iter().cycle()) {
            chart
                .draw_series(LineSeries::new(
                    s.iter().enumerate().map(|(i, &v)| (i as f64, v)),
                    color.stroke_width(2),
                ))
                .map_err(|e| draw_error(&e))?;
        }
        root.present().map_err(|e| draw_error(&e))?;
    }
    staging.commit().map_err(TrainError::io(path))
}
