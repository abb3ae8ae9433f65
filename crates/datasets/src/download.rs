//! Fetching MNIST-format files from public mirrors into a cache directory, verified by SHA-256.
//!
//! Each file streams into a temporary sibling (an `rnn_atomic::Staging`) and is verified
//! there; only a file whose digest matches is fsynced and renamed into place, so an
//! interrupted or corrupt download leaves nothing behind. Mirrors are tried in order.
//! `file://` mirrors (a local directory) always work; `http(s)://` mirrors need the `download`
//! cargo feature.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use sha2::{Digest as _, Sha256};

use crate::{DatasetError, MnistKind};

/// What a file's SHA-256 is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// The bytes as downloaded (the `.gz` file).
    Compressed(&'static str),
    /// The IDX bytes after gunzip: robust to mirrors that recompress the same data.
    Decompressed(&'static str),
}

/// One file of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, the same on every mirror and in the cache.
    pub name: &'static str,
    /// Its expected SHA-256 (lowercase hex).
    pub sha256: Digest,
}

/// The four MNIST files, with the SHA-256 of the published `.gz` files.
pub const MNIST_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: Digest::Compressed(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: Digest::Compressed(
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: Digest::Compressed(
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: Digest::Compressed(
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    },
];

/// The four Fashion-MNIST files, with the SHA-256 of their decompressed IDX contents (Debian's
/// package recompresses the same data, so the `.gz` bytes differ between sources).
pub const FASHION_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: Digest::Decompressed(
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: Digest::Decompressed(
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: Digest::Decompressed(
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: Digest::Decompressed(
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
];

/// The usual public mirrors of each dataset, tried in order.
pub fn default_mirrors(kind: MnistKind) -> Vec<String> {
    let mirrors: &[&str] = match kind {
        MnistKind::Digits => &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        MnistKind::Fashion => &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
    };
    mirrors.iter().map(|m| m.to_string()).collect()
}

/// The files of a dataset kind.
pub fn files(kind: MnistKind) -> &'static [RemoteFile; 4] {
    match kind {
        MnistKind::Digits => &MNIST_FILES,
        MnistKind::Fashion => &FASHION_FILES,
    }
}

/// Makes sure every file is in `dir` and verified, downloading the missing or corrupt ones
/// from the first mirror that serves a correct copy.
///
/// # Errors
/// [`DatasetError::Checksum`] when the last mirror tried served a wrong file, or
/// [`DatasetError::Download`] listing what every mirror answered.
pub fn fetch(
    files: &[RemoteFile],
    dir: &Path,
    mirrors: &[String],
    progress: bool,
) -> Result<(), DatasetError> {
    fs::create_dir_all(dir).map_err(DatasetError::io(dir))?;
    for file in files {
        let target = dir.join(file.name);
        if target.is_file() && verify(&target, file.sha256).is_ok() {
            continue;
        }
        let mut failures = Vec::new();
        let mut last_checksum = None;
        for mirror in mirrors {
            let url = format!("{}/{}", mirror.trim_end_matches('/'), file.name);
            match fetch_one(&url, &target, file.sha256, progress) {
                Ok(()) => {
                    failures.clear();
                    last_checksum = None;
                    break;
                }
                Err(DatasetError::Checksum {
                    path,
                    expected,
                    got,
                }) => {
                    failures.push(format!("{url}: SHA-256 mismatch"));
                    last_checksum = Some(DatasetError::Checksum {
                        path,
                        expected,
                        got,
                    });
                }
                Err(DatasetError::Download { attempts, .. }) => {
                    failures.push(format!("{url}: {}", attempts.join("; ")))
                }
                Err(e) => failures.push(format!("{url}: {}", e.with_causes())),
            }
        }
        if !target.is_file() {
            return Err(match (last_checksum, failures.len()) {
                (Some(e), 1) => e,
                _ => DatasetError::Download {
                    file: file.name.to_string(),
                    attempts: failures,
                },
            });
        }
    }
    Ok(())
}

/// Checks a file on disk against its digest.
///
/// # Errors
/// [`DatasetError::Checksum`] on mismatch, I/O errors otherwise.
pub fn verify(path: &Path, digest: Digest) -> Result<(), DatasetError> {
    let file = fs::File::open(path).map_err(DatasetError::io(path))?;
    let (expected, got) = match digest {
        Digest::Compressed(want) => (want, hash_reader(file, path)?),
        Digest::Decompressed(want) => (want, hash_reader(GzDecoder::new(file), path)?),
    };
    if got == expected {
        Ok(())
    } else {
        Err(DatasetError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            got,
        })
    }
}

fn hash_reader(mut reader: impl Read, path: &Path) -> Result<String, DatasetError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(DatasetError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Downloads one URL into a staging sibling of `target`, verifies it, renames it into place.
fn fetch_one(url: &str, target: &Path, digest: Digest, progress: bool) -> Result<(), DatasetError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Dropped uncommitted on any error below, which removes the partial file.
    let staging = rnn_atomic::Staging::new(target).map_err(DatasetError::io(target))?;
    let tmp = staging.path();
    let (reader, len) = open(url)?;
    let mut out = fs::File::create(tmp).map_err(DatasetError::io(tmp))?;
    copy_with_progress(reader, &mut out, len, &name, progress, tmp)?;
    drop(out);
    verify(tmp, digest)?;
    staging.commit().map_err(DatasetError::io(target))
}

/// A reader over the URL's bytes and their length when known.
fn open(url: &str) -> Result<(Box<dyn Read>, Option<u64>), DatasetError> {
    if let Some(path) = url.strip_prefix("file://") {
        let path = PathBuf::from(path);
        let file = fs::File::open(&path).map_err(DatasetError::io(&path))?;
        let len = file.metadata().ok().map(|m| m.len());
        return Ok((Box::new(file), len));
    }
    open_http(url)
}

#[cfg(feature = "download")]
fn open_http(url: &str) -> Result<(Box<dyn Read>, Option<u64>), DatasetError> {
    // Without a connect timeout an unreachable mirror could stall the program indefinitely.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(15)))
        .timeout_recv_response(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| DatasetError::Download {
        file: url.to_string(),
        attempts: vec![e.to_string()],
    })?;
    let len = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    // The 256 MiB cap bounds what a misbehaving server can make us write.
    let reader = response
        .into_body()
        .into_with_config()
        .limit(crate::MAX_IDX_BYTES)
        .reader();
    Ok((Box::new(reader), len))
}

#[cfg(not(feature = "download"))]
fn open_http(url: &str) -> Result<(Box<dyn Read>, Option<u64>), DatasetError> {
    Err(DatasetError::Download {
        file: url.to_string(),
        attempts: vec!["built without the `download` feature of rnn-datasets".into()],
    })
}

fn copy_with_progress(
    mut reader: Box<dyn Read>,
    out: &mut fs::File,
    len: Option<u64>,
    name: &str,
    progress: bool,
    tmp: &Path,
) -> Result<(), DatasetError> {
    #[cfg(feature = "download")]
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new(len.unwrap_or(0));
        bar.set_message(name.to_string());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    #[cfg(not(feature = "download"))]
    let _ = (len, name, progress);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(DatasetError::io(tmp))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(DatasetError::io(tmp))?;
        #[cfg(feature = "download")]
        if let Some(bar) = &bar {
            bar.inc(n as u64);
        }
    }
    #[cfg(feature = "download")]
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rnn-download-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sha(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn fetches_from_the_first_good_mirror_and_verifies() {
        let root = tmp("mirrors");
        let (bad, good, cache) = (root.join("bad"), root.join("good"), root.join("cache"));
        fs::create_dir_all(&bad).unwrap();
        fs::create_dir_all(&good).unwrap();
        fs::write(bad.join("a.gz"), b"corrupted").unwrap();
        fs::write(good.join("a.gz"), b"the real bytes").unwrap();
        let digest: &'static str = Box::leak(sha(b"the real bytes").into_boxed_str());
        let files = [RemoteFile {
            name: "a.gz",
            sha256: Digest::Compressed(digest),
        }];
        let mirrors = vec![
            format!("file://{}", root.join("missing").display()),
            format!("file://{}", bad.display()),
            format!("file://{}/", good.display()),
        ];
        fetch(&files, &cache, &mirrors, false).unwrap();
        assert_eq!(fs::read(cache.join("a.gz")).unwrap(), b"the real bytes");
        // Nothing else is left in the cache: no partial files.
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 1);
        // A verified cached file is not fetched again (the mirrors are gone now).
        fetch(&files, &cache, &[], false).unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_corrupt_download_leaves_nothing_behind() {
        let root = tmp("corrupt");
        fs::write(root.join("a.gz"), b"corrupted").unwrap();
        let files = [RemoteFile {
            name: "a.gz",
            sha256: Digest::Compressed("00"),
        }];
        let cache = root.join("cache");
        let err = fetch(
            &files,
            &cache,
            &[format!("file://{}", root.display())],
            false,
        )
        .unwrap_err();
        assert!(matches!(err, DatasetError::Checksum { .. }), "{err}");
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 0);
        let err = fetch(&files, &cache, &[], false).unwrap_err();
        assert!(matches!(err, DatasetError::Download { .. }), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }

    /// Debian's Fashion-MNIST files (installed by `.ci/run`) pass the published digests.
    #[test]
    fn debian_fashion_files_match_the_recorded_digests() {
        let debian = Path::new(crate::DEBIAN_FASHION_DIR);
        if !debian.is_dir() {
            eprintln!("skipped: {} not installed", debian.display());
            return;
        }
        let cache = tmp("fashion");
        let labels: Vec<RemoteFile> = FASHION_FILES
            .iter()
            .copied()
            .filter(|f| f.name.contains("labels"))
            .collect();
        fetch(
            &labels,
            &cache,
            &[format!("file://{}", debian.display())],
            false,
        )
        .unwrap();
        for f in &FASHION_FILES {
            verify(&debian.join(f.name), f.sha256).unwrap();
        }
        fs::remove_dir_all(&cache).unwrap();
    }
}
