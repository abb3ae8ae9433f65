//! # rnn-atomic
//!
//! The one way the toolkit writes a file: into a temporary sibling of the target, fsynced, then
//! renamed over the target, so a crash or a failed write leaves either the old file or the new
//! one, never half of it. Model weights, checkpoints, metrics logs, plots, benchmark reports and
//! downloads all go through [`Staging`] (or [`write`] for bytes in memory).
//!
//! Why not a crate from crates.io: `atomic-write-file` stages one file written through its own
//! handle, and `tempfile` gives temporary names but neither fsync nor replacement. We also stage
//! files that another library writes by path (plotters' PNGs), whole directories (checkpoints),
//! and downloads that are verified before they may replace anything; and `rnn-models` must stay
//! light without default features (`atomic-write-file` brings `nix` and a second `rand`). The
//! whole dance is a few dozen lines of std.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("rnn-atomic-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("metrics.jsonl");
//! rnn_atomic::write(&path, b"{\"epoch\":1}\n")?;
//!
//! // Anything that writes by path: hand it the staging path, then commit.
//! let staging = rnn_atomic::Staging::new(&path)?;
//! std::fs::write(staging.path(), b"{\"epoch\":2}\n")?;
//! staging.commit()?;
//! assert_eq!(std::fs::read(&path)?, b"{\"epoch\":2}\n");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod staging;

pub use staging::{Staging, is_stale, remove_dir, write};
