//! PNG pictures of a run: the learning curve, line charts (a prediction against its target),
//! confusion matrices and grouped bar charts (a benchmark's times). Every picture has a title, labelled axes with ticks and a legend.
//!
//! Text is drawn with DejaVu Sans, embedded in the binary (`assets/`, with its licence) and
//! registered with plotters' `ab_glyph` backend on first use: nothing is read from the system.
//! Each picture is drawn by a function generic over the plotters backend (the tests draw into
//! a pixel buffer) and written atomically through [`Staging`].

mod bar_chart;
mod confusion;
mod learning_curve;
mod line_chart;

use std::fmt::Display;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rnn_atomic::Staging;

use crate::{RunInfo, TrainError};

pub use bar_chart::{BarChart, bar_chart};
pub use confusion::confusion_matrix;
pub use learning_curve::learning_curve;
pub use line_chart::{LineChart, Series, line_chart};

/// DejaVu Sans Book (Bitstream Vera licence, `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family every picture asks for; plotters' defaults (tick labels, legends) ask for it too.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the embedded font once per process.
fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err("the embedded font DejaVuSans.ttf cannot be parsed".into())
    }
}

/// A drawing error as text (plotters' errors are generic over the backend).
pub(crate) fn reason(e: impl Display) -> String {
    e.to_string()
}

/// Draws a picture of `size` pixels with `draw` and writes it to `path` as a PNG, atomically.
fn write_png<F>(path: &Path, size: (u32, u32), draw: F) -> Result<(), TrainError>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
{
    let plot_error = |reason: String| TrainError::Plot {
        path: path.to_path_buf(),
        reason,
    };
    register_font().map_err(plot_error)?;
    let staging = Staging::new(path).map_err(TrainError::io(path))?;
    {
        let root = BitMapBackend::new(staging.path(), size).into_drawing_area();
        draw(&root).map_err(plot_error)?;
        root.present().map_err(|e| plot_error(reason(e)))?;
    }
    staging.commit().map_err(TrainError::io(path))
}

/// Palette (matplotlib's "tab10", which reads well on white and in grey scale).
pub(crate) mod colour {
    use plotters::style::RGBColor;
    /// Training values.
    pub const BLUE: RGBColor = RGBColor(31, 119, 180);
    /// Validation values.
    pub const RED: RGBColor = RGBColor(214, 39, 40);
    /// A second training metric.
    pub const GREEN: RGBColor = RGBColor(44, 160, 44);
    /// A second validation metric.
    pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
    /// Secondary text.
    pub const GREY: RGBColor = RGBColor(90, 90, 90);
}

/// Font sizes in pixels.
pub(crate) mod size {
    /// Picture title.
    pub const TITLE: u32 = 26;
    /// Subtitle under it (backend, date).
    pub const SUBTITLE: u32 = 16;
    /// Panel caption.
    pub const CAPTION: u32 = 19;
    /// Axis descriptions.
    pub const AXIS: u32 = 17;
    /// Tick labels and legend entries.
    pub const LABEL: u32 = 15;
}

/// The legend of `chart`'s labelled series at `position`, in a framed, nearly opaque box.
pub(crate) fn legend_at<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(position)
        .margin(12)
        .label_font((FAMILY, size::LABEL))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(reason)
}

/// Height of the band [`heading`] draws.
pub(crate) const HEADING_HEIGHT: u32 = 68;

/// Draws the title (bold-looking, centred) and the subtitle under it in the top band of `area`
/// and returns the rest of the area.
pub(crate) fn heading<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>, String> {
    let (top, rest) = area.split_vertically(HEADING_HEIGHT);
    let (width, _) = top.dim_in_pixel();
    let centre = |px| Pos::new(HPos::Center, px);
    top.draw_text(
        title,
        &TextStyle::from((FAMILY, size::TITLE).into_font())
            .color(&BLACK)
            .pos(centre(VPos::Top)),
        (width as i32 / 2, 10),
    )
    .map_err(reason)?;
    top.draw_text(
        subtitle,
        &TextStyle::from((FAMILY, size::SUBTITLE).into_font())
            .color(&colour::GREY)
            .pos(centre(VPos::Top)),
        (width as i32 / 2, 44),
    )
    .map_err(reason)?;
    Ok(rest)
}

/// A tick label: up to four significant digits, scientific notation outside [0.001, 10⁵).
pub(crate) fn tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.0e}");
        s.replace("e-", "e−")
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

impl RunInfo {
    /// `(title, subtitle)` of a picture of this run: "`program`: `what`" and
    /// "`backend` · `date`" (parts left empty are left out).
    pub(crate) fn heading(&self, what: &str) -> (String, String) {
        let title = if self.program.is_empty() {
            what.to_string()
        } else {
            format!("{}: {what}", self.program)
        };
        let subtitle = [self.backend.as_str(), self.date.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" · ");
        (title, subtitle)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Drawing into a pixel buffer and looking at regions of it.

    use super::*;

    /// An RGB picture drawn by `draw` into memory.
    pub struct Pixels {
        pub width: usize,
        pub height: usize,
        pub rgb: Vec<u8>,
    }

    impl Pixels {
        pub fn draw<F>(width: u32, height: u32, draw: F) -> Pixels
        where
            F: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
        {
            register_font().unwrap();
            let mut rgb = vec![0u8; (width * height * 3) as usize];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                draw(&root).unwrap();
                root.present().unwrap();
            }
            Pixels {
                width: width as usize,
                height: height as usize,
                rgb,
            }
        }

        /// Pixels in `x0..x1 × y0..y1` that are not white.
        pub fn inked(&self, (x0, x1): (usize, usize), (y0, y1): (usize, usize)) -> usize {
            let mut n = 0;
            for y in y0..y1.min(self.height) {
                for x in x0..x1.min(self.width) {
                    let i = (y * self.width + x) * 3;
                    if self.rgb[i..i + 3] != [255, 255, 255] {
                        n += 1;
                    }
                }
            }
            n
        }
    }

    /// Width and height from a PNG file's IHDR chunk (bytes 16..24, big-endian).
    pub fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            path.display()
        );
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (word(16), word(20))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::Pixels;
    use super::*;

    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        let blank = Pixels::draw(400, 100, |root| root.fill(&WHITE).map_err(reason));
        assert_eq!(blank.inked((0, 400), (0, 100)), 0);
        let titled = Pixels::draw(400, 100, |root| {
            root.fill(&WHITE).map_err(reason)?;
            heading(root, "Learning curve", "flex · 2025-01-01").map(|_| ())
        });
        // Title glyphs in the top band, subtitle glyphs under them, nothing at the edges.
        assert!(titled.inked((100, 300), (8, 40)) > 200);
        assert!(titled.inked((100, 300), (42, 66)) > 100);
        assert_eq!(titled.inked((0, 20), (0, 100)), 0);
    }

    #[test]
    fn ticks_are_short_and_plain() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(0.0123456), "0.01235");
        assert_eq!(tick(1500.0), "1500");
        assert_eq!(tick(1e-5), "1e−5");
    }

    #[test]
    fn headings_leave_out_what_is_unknown() {
        let info = RunInfo {
            program: "sin_cos".into(),
            backend: "flex".into(),
            date: "2025-01-01".into(),
            command: String::new(),
        };
        assert_eq!(
            info.heading("prediction"),
            ("sin_cos: prediction".into(), "flex · 2025-01-01".into())
        );
        assert_eq!(
            RunInfo::default().heading("learning curve"),
            ("learning curve".into(), String::new())
        );
    }
}
