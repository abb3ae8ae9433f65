//! `report.html`: one self-contained page per run — what ran where and when, the final
//! metrics, the pictures (inline PNGs, so it opens without a server or the files beside it),
//! the training config and the epoch table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{History, Metrics, TrainConfig, TrainError};

/// What ran, where and when: the titles of a run's pictures and the head of its report.
/// The caller fills it (an example: its binary's name and the backend it opened).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The program, e.g. `mnist_rnn`.
    pub program: String,
    /// The backend and device, e.g. `flex (CPU, pure Rust)`.
    pub backend: String,
    /// When the run started, e.g. `2025-06-01 14:03 UTC`.
    pub date: String,
    /// The command line, for the report.
    pub command: String,
}

impl RunInfo {
    /// `program` on `backend`, dated now (UTC), with this process's command line.
    pub fn new(program: impl Into<String>, backend: impl Into<String>) -> Self {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            program: program.into(),
            backend: backend.into(),
            date: utc_date(seconds),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch (proleptic Gregorian calendar).
pub(crate) fn utc_date(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let minutes = (seconds % 86_400) / 60;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// The report of one run: built from its config and history, with results measured after
/// training and pictures added by the caller, then [`written`](Report::write) into the run
/// directory. [`fit`](crate::fit) writes one with the learning curve; a program that measures
/// more (a test set, a confusion matrix) writes it again with those added.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    config: &'a TrainConfig,
    history: &'a History,
    results: Vec<(String, String)>,
    pictures: Vec<(String, PathBuf)>,
}

impl<'a> Report<'a> {
    /// A report of the run of `config` with `history`, showing `learning_curve.png`.
    pub fn new(config: &'a TrainConfig, history: &'a History) -> Self {
        Self {
            config,
            history,
            results: Vec::new(),
            pictures: vec![("Learning curve".into(), "learning_curve.png".into())],
        }
    }

    /// Adds a result measured after training, e.g. `("test accuracy", "98.41%")`.
    pub fn result(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.results.push((name.into(), value.into()));
        self
    }

    /// Adds the picture `file` (a PNG in the run directory) under `caption`.
    pub fn picture(mut self, caption: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        self.pictures.push((caption.into(), file.into()));
        self
    }

    /// Writes `report.html` into `dir`, atomically, and returns its path. Pictures that are
    /// not there (a run without steps has no learning curve) are left out.
    ///
    /// # Errors
    /// [`TrainError::Io`] when a picture cannot be read or the report cannot be written.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, TrainError> {
        let path = dir.join("report.html");
        let html = self.html(dir)?;
        rnn_atomic::write(&path, html.as_bytes()).map_err(TrainError::io(&path))?;
        Ok(path)
    }

    /// The page, with the pictures read from `dir`.
    fn html(&self, dir: &Path) -> Result<String, TrainError> {
        let info = self.config.run_info.clone().unwrap_or_default();
        let name = if info.program.is_empty() {
            "training run"
        } else {
            info.program.as_str()
        };
        let mut page = String::new();
        let w = &mut page;
        let _ = write!(
            w,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{} report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}: run report</h1>\n",
            escape(name),
            escape(name)
        );
        let mut about = Vec::new();
        for (label, value) in [
            ("backend", &info.backend),
            ("date", &info.date),
            ("command", &info.command),
        ] {
            if !value.is_empty() {
                about.push((label.to_string(), value.clone()));
            }
        }
        table(w, "about", &about, true);
        self.final_metrics(w);
        for (caption, file) in &self.pictures {
            let file_path = dir.join(file);
            let bytes = match std::fs::read(&file_path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(TrainError::Io {
                        path: file_path,
                        source,
                    });
                }
            };
            let _ = write!(
                w,
                "<figure>\n<figcaption>{} <span class=\"file\">({})</span></figcaption>\n\
                 <img src=\"data:image/png;base64,{}\" alt=\"{}\">\n</figure>\n",
                escape(caption),
                escape(&file.display().to_string()),
                base64(&bytes),
                escape(caption)
            );
        }
        table(w, "training config", &config_rows(self.config), true);
        self.epoch_table(w);
        w.push_str("</body>\n</html>\n");
        Ok(page)
    }

    fn final_metrics(&self, w: &mut String) {
        let mut rows = self.results.clone();
        if let Some(last) = self.history.last() {
            rows.push(("epochs run".into(), last.epoch.to_string()));
            if self.history.stopped_early {
                rows.push(("stopped".into(), "early (no improvement)".into()));
            }
            rows.extend(metric_rows("training", &last.train));
            if let Some(valid) = &last.valid {
                rows.extend(metric_rows("validation", valid));
            }
            let seconds: f64 = self.history.epochs.iter().map(|e| e.seconds).sum();
            if seconds > 0.0 {
                rows.push(("training time".into(), format!("{seconds:.2} s")));
            }
        }
        table(w, "final metrics", &rows, true);
    }

    fn epoch_table(&self, w: &mut String) {
        if self.history.epochs.is_empty() {
            return;
        }
        let _ = write!(
            w,
            "<details>\n<summary>every epoch ({})</summary>\n<table>\n<tr><th>epoch</th>\
             <th>learning rate</th><th>training</th><th>validation</th><th>seconds</th></tr>\n",
            self.history.epochs.len()
        );
        for e in &self.history.epochs {
            let _ = writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
                e.epoch,
                e.lr,
                escape(&e.train.summary()),
                e.valid
                    .map(|v| escape(&v.summary()))
                    .unwrap_or_else(|| "–".into()),
                e.seconds
            );
        }
        w.push_str("</table>\n</details>\n");
    }
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;max-width:1120px;\
margin:2em auto;padding:0 1em;color:#222;line-height:1.4}h1{margin-bottom:.2em}\
h2{font-size:1.2em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:.25em .7em;\
text-align:left;vertical-align:top}th{background:#f3f3f3}td.v{font-family:monospace}\
figure{margin:1.5em 0}figcaption{font-weight:bold;margin-bottom:.4em}\
figcaption .file{font-weight:normal;color:#777}img{max-width:100%;border:1px solid #ddd}\
summary{cursor:pointer;margin:1em 0 .4em;font-weight:bold}";

/// `training loss`, `training accuracy` … for the metrics measured.
fn metric_rows(pass: &str, m: &Metrics) -> Vec<(String, String)> {
    let mut rows = vec![(format!("{pass} loss"), format!("{:.4}", m.loss))];
    if let Some(a) = m.accuracy {
        rows.push((format!("{pass} accuracy"), format!("{:.2}%", a * 100.0)));
    }
    if let Some(e) = m.exact_match {
        rows.push((format!("{pass} exact match"), format!("{:.2}%", e * 100.0)));
    }
    if let Some(mse) = m.mse {
        rows.push((format!("{pass} MSE"), format!("{mse:.6}")));
    }
    rows
}

/// The config's fields as `name → value` rows, nested values written out like Rust's
/// `Debug` (`Adam { beta1: 0.9, lr: 0.001, … }`).
fn config_rows(config: &TrainConfig) -> Vec<(String, String)> {
    let value = serde_json::to_value(config).unwrap_or_default();
    let Some(fields) = value.as_object() else {
        return Vec::new();
    };
    fields.iter().map(|(k, v)| (k.clone(), shown(v))).collect()
}

/// A config value for people: strings bare, `null` as "none", numbers stored as `f32` without
/// their binary noise (0.9, not 0.8999999761581421), enum variants by name.
fn shown(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "none".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) => {
                let short = format!("{}", f as f32);
                if short.len() > 8 {
                    format!("{:e}", f as f32)
                } else {
                    short
                }
            }
            _ => n.to_string(),
        },
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(shown).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            // serde's externally tagged enum: `{"Adam": {…}}` reads as `Adam { … }`.
            if let (1, Some((name, inner))) = (map.len(), map.iter().next())
                && inner.is_object()
            {
                return format!("{name} {}", shown(inner));
            }
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}: {}", shown(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
    }
}

fn table(w: &mut String, heading: &str, rows: &[(String, String)], values_monospace: bool) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(w, "<h2>{}</h2>\n<table>", escape(heading));
    let class = if values_monospace { " class=\"v\"" } else { "" };
    for (k, v) in rows {
        let _ = writeln!(
            w,
            "<tr><th>{}</th><td{class}>{}</td></tr>",
            escape(k),
            escape(v)
        );
    }
    w.push_str("</table>\n");
}

/// Text made safe inside HTML elements and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4), for `data:` URLs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EpochRecord;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        // RFC 4648 §10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn dates_are_utc_calendar_days() {
        // `date -u -d @SECONDS`.
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_704_067_199), "2023-12-31 23:59 UTC");
        assert_eq!(utc_date(1_709_210_096), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn config_values_read_as_written() {
        let optimizer =
            serde_json::json!({"Adam": {"beta1": 0.9f32, "lr": 0.02f32, "eps": 1e-8f32}});
        assert_eq!(
            shown(&optimizer),
            "Adam { beta1: 0.9, eps: 1e-8, lr: 0.02 }"
        );
        assert_eq!(shown(&serde_json::json!(null)), "none");
        assert_eq!(shown(&serde_json::json!("Constant")), "Constant");
        assert_eq!(shown(&serde_json::json!([1, 2])), "[1, 2]");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn the_report_holds_info_config_results_and_pictures() {
        let dir = std::env::temp_dir().join(format!("rnn-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("learning_curve.png"), b"foobar").unwrap();
        std::fs::write(dir.join("cm.png"), b"fo").unwrap();
        let config = TrainConfig {
            run_info: Some(RunInfo {
                program: "mnist_rnn".into(),
                backend: "flex (CPU)".into(),
                date: "2025-01-01 10:00 UTC".into(),
                command: "mnist_rnn --out <dir>".into(),
            }),
            ..TrainConfig::new(3, 16)
        };
        let history = History {
            epochs: vec![EpochRecord {
                epoch: 1,
                global_step: 4,
                lr: 0.001,
                train: Metrics {
                    loss: 0.5,
                    accuracy: Some(0.875),
                    ..Metrics::default()
                },
                valid: None,
                step_losses: vec![0.6, 0.5],
                mid_epoch_valid: vec![],
                seconds: 2.0,
            }],
            stopped_early: false,
        };
        let path = Report::new(&config, &history)
            .result("test accuracy", "86.50%")
            .picture("Confusion matrix", "cm.png")
            .picture("Not drawn", "missing.png")
            .write(&dir)
            .unwrap();
        let html = std::fs::read_to_string(&path).unwrap();
        for expected in [
            "<!DOCTYPE html>",
            "<h1>mnist_rnn: run report</h1>",
            "flex (CPU)",
            "2025-01-01 10:00 UTC",
            "mnist_rnn --out &lt;dir&gt;",
            "<tr><th>test accuracy</th><td class=\"v\">86.50%</td></tr>",
            "<tr><th>training accuracy</th><td class=\"v\">87.50%</td></tr>",
            "<tr><th>batch_size</th><td class=\"v\">16</td></tr>",
            "<tr><th>epochs</th><td class=\"v\">3</td></tr>",
            "<img src=\"data:image/png;base64,Zm9vYmFy\" alt=\"Learning curve\">",
            "<img src=\"data:image/png;base64,Zm8=\" alt=\"Confusion matrix\">",
            "</html>",
        ] {
            assert!(html.contains(expected), "{expected:?} missing from\n{html}");
        }
        assert!(!html.contains("Not drawn"));
        // Learning curve before the confusion matrix, both before the config.
        let at = |s: &str| html.find(s).unwrap();
        assert!(at("Zm9vYmFy") < at("Zm8=") && at("Zm8=") < at("batch_size"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
