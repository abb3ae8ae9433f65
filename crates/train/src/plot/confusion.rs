//! A confusion matrix as a heat map: rows the true classes, columns the predictions, each cell
//! its count, shaded by the fraction of its row.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FAMILY, colour, heading, reason, size, write_png};
use crate::{ConfusionMatrix, RunInfo, TrainError};

/// Width of the band for the rotated "true class" description.
const AXIS_BAND: i32 = 34;
/// Space above the grid for the line that sums it up.
const SUMMARY: i32 = 40;
/// Narrowest picture: room for the title.
const MIN_WIDTH: u32 = 760;

/// Pixels the longest class name takes (about 0.56 em per character at the label size),
/// plus a gap: the band for row names left of the grid and column names under it.
fn names_band(matrix: &ConfusionMatrix) -> i32 {
    let longest = matrix
        .classes()
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(1);
    (longest as f64 * 0.56 * f64::from(size::LABEL)).ceil() as i32 + 16
}

/// Cell size in pixels: 64, or larger so that the grid is at least 260 pixels wide, or
/// smaller so that it is at most 760.
fn cell_size(classes: usize) -> i32 {
    let n = classes.max(1) as i32;
    (260 / n).max(64).min(760 / n).max(8)
}

fn picture_size(matrix: &ConfusionMatrix) -> (u32, u32) {
    let n = matrix.classes().len() as i32;
    let grid = cell_size(n as usize) * n;
    let names = names_band(matrix);
    let width = (AXIS_BAND + names + grid + 40) as u32;
    let height = super::HEADING_HEIGHT as i32 + SUMMARY + grid + names + AXIS_BAND + 10;
    (width.max(MIN_WIDTH), height as u32)
}

/// Draws `matrix` into a PNG at `path`, atomically, titled "`program`: `what`" with the
/// number of items, the accuracy, the backend and the date under it.
///
/// # Errors
/// [`TrainError::Plot`] when it cannot be drawn (or has no classes), [`TrainError::Io`] when
/// it cannot be written; the file at `path` is then left as it was.
pub fn confusion_matrix(
    path: &Path,
    matrix: &ConfusionMatrix,
    what: &str,
    info: &RunInfo,
) -> Result<(), TrainError> {
    if matrix.classes().is_empty() {
        return Err(TrainError::Plot {
            path: path.to_path_buf(),
            reason: "a confusion matrix needs at least one class".into(),
        });
    }
    let size = picture_size(matrix);
    write_png(path, size, |root| draw(root, matrix, what, info))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    matrix: &ConfusionMatrix,
    what: &str,
    info: &RunInfo,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(reason)?;
    let (title, subtitle) = info.heading(what);
    let body = heading(root, &title, &subtitle)?;
    let n = matrix.classes().len();
    let (width, _) = body.dim_in_pixel();
    let cell = cell_size(n);
    let grid = cell * n as i32;
    let names = names_band(matrix);
    // The block (axis band, names, grid) centred across the picture.
    let block = AXIS_BAND + names + grid;
    let x0 = ((width as i32 - block) / 2).max(0);
    let left = x0 + AXIS_BAND + names;
    let top = SUMMARY;
    let text = |px: u32, pos: Pos| {
        TextStyle::from((FAMILY, px).into_font())
            .color(&BLACK)
            .pos(pos)
    };
    body.draw_text(
        &format!(
            "{} items, {:.2}% correct (the diagonal); shade: share of the true class's row",
            matrix.total(),
            matrix.accuracy() * 100.0
        ),
        &text(size::LABEL, Pos::new(HPos::Center, VPos::Top)),
        (width as i32 / 2, 6),
    )
    .map_err(reason)?;
    let count_px = (cell as u32 / 4).clamp(10, size::LABEL);
    for actual in 0..n {
        let total = matrix.row_total(actual).max(1) as f64;
        for predicted in 0..n {
            let count = matrix.count(actual, predicted);
            let share = count as f64 / total;
            // White to the palette's blue by the share of the row.
            let mix = |c: u8| (255.0 - share * (255.0 - f64::from(c))).round() as u8;
            let fill = RGBColor(
                mix(colour::BLUE.0),
                mix(colour::BLUE.1),
                mix(colour::BLUE.2),
            );
            let (x, y) = (left + predicted as i32 * cell, top + actual as i32 * cell);
            body.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                fill.filled(),
            ))
            .map_err(reason)?;
            body.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                BLACK.mix(0.15).stroke_width(1),
            ))
            .map_err(reason)?;
            let ink = if share > 0.55 { WHITE } else { BLACK };
            body.draw_text(
                &count.to_string(),
                &TextStyle::from((FAMILY, count_px).into_font())
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
                (x + cell / 2, y + cell / 2),
            )
            .map_err(reason)?;
        }
    }
    body.draw(&Rectangle::new(
        [(left, top), (left + grid, top + grid)],
        BLACK.mix(0.6).stroke_width(1),
    ))
    .map_err(reason)?;
    let name_px = size::LABEL;
    for (k, name) in matrix.classes().iter().enumerate() {
        let middle = k as i32 * cell + cell / 2;
        // Row names right-aligned against the grid; column names read upwards under it.
        body.draw_text(
            name,
            &text(name_px, Pos::new(HPos::Right, VPos::Center)),
            (left - 8, top + middle),
        )
        .map_err(reason)?;
        body.draw_text(
            name,
            &text(name_px, Pos::new(HPos::Right, VPos::Center)).transform(FontTransform::Rotate270),
            (left + middle, top + grid + 8),
        )
        .map_err(reason)?;
    }
    body.draw_text(
        "predicted class",
        &text(size::AXIS, Pos::new(HPos::Center, VPos::Top)),
        (left + grid / 2, top + grid + names + 6),
    )
    .map_err(reason)?;
    body.draw_text(
        "true class",
        &text(size::AXIS, Pos::new(HPos::Center, VPos::Top)).transform(FontTransform::Rotate270),
        (x0 + 6, top + grid / 2),
    )
    .map_err(reason)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Pixels, png_size};
    use super::*;

    #[test]
    fn draws_names_counts_and_title() {
        let mut m = ConfusionMatrix::new(["linear", "random"]);
        m.record(&[0, 0, 1, 1, 1], &[0, 1, 1, 1, 1]);
        let info = RunInfo::default();
        let (w, h) = picture_size(&m);
        let px = Pixels::draw(w, h, |root| draw(root, &m, "confusion matrix", &info));
        let (names, grid) = (names_band(&m), 2 * cell_size(2));
        let x0 = ((w as i32 - AXIS_BAND - names - grid) / 2) as usize;
        let left = x0 + (AXIS_BAND + names) as usize;
        let top = (super::super::HEADING_HEIGHT as i32 + SUMMARY) as usize;
        let (grid, names) = (grid as usize, names as usize);
        assert!(px.inked((200, w as usize - 200), (5, 40)) > 200, "no title");
        assert!(
            px.inked((200, w as usize - 200), (top - 34, top - 4)) > 100,
            "no summary"
        );
        // Row names left of the grid, column names under it, the axis descriptions.
        let band = (x0 + AXIS_BAND as usize, left - 2);
        assert!(px.inked(band, (top, top + grid)) > 100, "no row names");
        let under = (top + grid + 2, top + grid + names);
        assert!(
            px.inked((left, left + grid), under) > 100,
            "no column names"
        );
        assert!(
            px.inked((x0, x0 + AXIS_BAND as usize), (top, top + grid)) > 50,
            "no y description"
        );
        let below = (top + grid + names, h as usize);
        assert!(
            px.inked((left, left + grid), below) > 50,
            "no x description"
        );
        // The counts, white on the dark diagonal cells: ink that is neither white nor blue.
        assert!(px.inked((left, left + grid), (top, top + grid)) > grid * grid / 3);

        let path = std::env::temp_dir().join(format!("rnn-plot-cm-{}.png", std::process::id()));
        confusion_matrix(&path, &m, "confusion matrix", &info).unwrap();
        assert_eq!(png_size(&path), picture_size(&m));
        let _ = std::fs::remove_file(&path);
        let none = ConfusionMatrix::new(Vec::<String>::new());
        assert!(confusion_matrix(&path, &none, "x", &info).is_err());
    }
}
