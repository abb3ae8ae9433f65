//! MNIST and Fashion-MNIST as sequences: rows as time steps (`[28, 28]`), or the harder
//! pixel-by-pixel variants (`[784, 1]`, optionally under a fixed seeded permutation).
//!
//! Where the files come from, in order: an explicit directory; the `RNN_DATA_DIR` environment
//! variable (`$RNN_DATA_DIR/mnist` or `$RNN_DATA_DIR/fashion-mnist`, or the directory itself);
//! the cache directory (`$XDG_CACHE_HOME/rnn-toolkit/…` or `~/.cache/rnn-toolkit/…`); for
//! Fashion-MNIST, Debian's `dataset-fashion-mnist` package; a download from the public mirrors
//! into the cache (SHA-256 verified, when `download` is set); for digits, finally, a
//! 5,000-digit real MNIST sample embedded in this crate. [`Mnist::source`] says which was used.

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::DatasetError;
use crate::idx::{IdxArray, parse_idx, read_idx};

/// The environment variable naming a data directory.
pub const DATA_DIR_VAR: &str = "RNN_DATA_DIR";

/// Debian's `dataset-fashion-mnist` install path.
pub const DEBIAN_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Which of the two MNIST-format datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MnistKind {
    /// Handwritten digits.
    Digits,
    /// Zalando's Fashion-MNIST.
    Fashion,
}

impl MnistKind {
    /// Directory name used under data and cache directories.
    pub fn dir_name(self) -> &'static str {
        match self {
            MnistKind::Digits => "mnist",
            MnistKind::Fashion => "fashion-mnist",
        }
    }

    /// The ten class names.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            MnistKind::Digits => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            MnistKind::Fashion => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }
}

/// Training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-*` files.
    Train,
    /// `t10k-*` files.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// How an image becomes a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceLayout {
    /// 28 steps of 28 pixels: each row is a time step (the TensorFlow tutorial).
    Rows,
    /// 784 steps of one pixel (sequential MNIST).
    Pixels,
    /// 784 steps of one pixel in a fixed random order drawn from the seed (permuted MNIST).
    Permuted {
        /// Seed of the permutation; the same for train and test.
        seed: u64,
    },
}

/// Where the data was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A directory the caller or `RNN_DATA_DIR` named, or the cache.
    Directory(PathBuf),
    /// Downloaded just now into this cache directory.
    Downloaded(PathBuf),
    /// Debian's `dataset-fashion-mnist` package.
    Debian(PathBuf),
    /// The 5,000-digit real MNIST sample embedded in this crate (4,000 train / 1,000 test).
    EmbeddedSample,
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Directory(p) => write!(f, "files in {}", p.display()),
            DataSource::Downloaded(p) => write!(f, "files downloaded into {}", p.display()),
            DataSource::Debian(p) => write!(f, "Debian's dataset-fashion-mnist ({})", p.display()),
            DataSource::EmbeddedSample => write!(
                f,
                "the embedded 5,000-digit MNIST sample (not the full dataset; pass --data-dir or set {DATA_DIR_VAR} for all 70,000)"
            ),
        }
    }
}

/// One image as a sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceItem {
    /// `[steps, features]` row-major, pixel values scaled to `[0, 1]`.
    pub values: Vec<f32>,
    /// Time steps.
    pub steps: usize,
    /// Features per step.
    pub features: usize,
    /// Class, 0 to 9.
    pub label: usize,
}

impl SequenceItem {
    /// The same sequence with the features of every step in reverse order: for an image read
    /// by rows, its left–right mirror image (a common augmentation for Fashion-MNIST).
    pub fn mirrored(&self) -> Self {
        let mut values = self.values.clone();
        for step in values.chunks_exact_mut(self.features.max(1)) {
            step.reverse();
        }
        Self {
            values,
            ..self.clone()
        }
    }
}

/// Options for [`Mnist::load`].
#[derive(Debug, Clone)]
pub struct MnistOptions {
    /// Digits or Fashion.
    pub kind: MnistKind,
    /// Train or test.
    pub split: Split,
    /// Rows, pixels or permuted pixels.
    pub layout: SequenceLayout,
    /// A directory to read first (`--data-dir`).
    pub data_dir: Option<PathBuf>,
    /// Download into the cache when nothing local is found (default `true`).
    pub download: bool,
    /// Mirrors to download from; `None`: [`default_mirrors`](crate::default_mirrors).
    pub mirrors: Option<Vec<String>>,
}

impl MnistOptions {
    /// Rows-as-sequences of the given kind and split, searched in the default places.
    pub fn new(kind: MnistKind, split: Split) -> Self {
        Self {
            kind,
            split,
            layout: SequenceLayout::Rows,
            data_dir: None,
            download: true,
            mirrors: None,
        }
    }
}

/// An MNIST-format dataset served as sequences.
#[derive(Debug, Clone)]
pub struct Mnist {
    images: Vec<u8>,
    labels: Vec<u8>,
    layout: SequenceLayout,
    permutation: Option<Vec<usize>>,
    source: DataSource,
}

const PIXELS: usize = 28 * 28;

mod embedded {
    pub const TRAIN_IMAGES: &[u8] =
        include_bytes!("../data/mnist-sample/train-images-idx3-ubyte.gz");
    pub const TRAIN_LABELS: &[u8] =
        include_bytes!("../data/mnist-sample/train-labels-idx1-ubyte.gz");
    pub const TEST_IMAGES: &[u8] = include_bytes!("../data/mnist-sample/t10k-images-idx3-ubyte.gz");
    pub const TEST_LABELS: &[u8] = include_bytes!("../data/mnist-sample/t10k-labels-idx1-ubyte.gz");
}

impl Mnist {
    /// Finds and loads the data (see the module docs for the search order).
    ///
    /// # Errors
    /// [`DatasetError::NotFound`] listing every place searched (Fashion-MNIST has no embedded
    /// fallback), or the errors of a malformed file.
    pub fn load(options: &MnistOptions) -> Result<Self, DatasetError> {
        let mut searched = Vec::new();
        for dir in candidate_dirs(options) {
            if has_files(&dir, options.split) {
                let (images, labels) = read_pair(&dir, options.split)?;
                return Self::from_arrays(
                    images,
                    labels,
                    options.layout,
                    DataSource::Directory(dir),
                );
            }
            searched.push(dir);
        }
        if options.kind == MnistKind::Fashion {
            let debian = PathBuf::from(DEBIAN_FASHION_DIR);
            if has_files(&debian, options.split) {
                let (images, labels) = read_pair(&debian, options.split)?;
                return Self::from_arrays(
                    images,
                    labels,
                    options.layout,
                    DataSource::Debian(debian),
                );
            }
            searched.push(debian);
        }
        if let (true, Some(cache)) = (options.download, cache_dir()) {
            let dir = cache.join(options.kind.dir_name());
            let mirrors = options
                .mirrors
                .clone()
                .unwrap_or_else(|| crate::default_mirrors(options.kind));
            eprintln!(
                "downloading {} into {} …",
                options.kind.dir_name(),
                dir.display()
            );
            match crate::fetch(crate::files(options.kind), &dir, &mirrors, true) {
                Ok(()) => {
                    let (images, labels) = read_pair(&dir, options.split)?;
                    return Self::from_arrays(
                        images,
                        labels,
                        options.layout,
                        DataSource::Downloaded(dir),
                    );
                }
                Err(e) => eprintln!("download failed: {}", e.with_causes()),
            }
        }
        if options.kind == MnistKind::Fashion {
            return Err(DatasetError::NotFound {
                dataset: "Fashion-MNIST",
                searched,
                hint: "Install it with `apt-get install dataset-fashion-mnist`, or put the four \
                       IDX files (train-images-idx3-ubyte.gz, …) in a directory and pass \
                       --data-dir DIR or set RNN_DATA_DIR=DIR",
            });
        }
        Self::embedded(options.split, options.layout)
    }

    /// The embedded real-MNIST sample: 4,000 training and 1,000 test digits.
    ///
    /// # Errors
    /// Only if the embedded files were corrupted at build time.
    pub fn embedded(split: Split, layout: SequenceLayout) -> Result<Self, DatasetError> {
        let (images, labels) = match split {
            Split::Train => (embedded::TRAIN_IMAGES, embedded::TRAIN_LABELS),
            Split::Test => (embedded::TEST_IMAGES, embedded::TEST_LABELS),
        };
        let decode = |gz: &[u8], name: &str| {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut raw)
                .map_err(DatasetError::io(name))?;
            parse_idx(&raw, Path::new(name))
        };
        Self::from_arrays(
            decode(images, "<embedded images>")?,
            decode(labels, "<embedded labels>")?,
            layout,
            DataSource::EmbeddedSample,
        )
    }

    /// Builds the dataset from already-read IDX arrays, checking that they fit together.
    ///
    /// # Errors
    /// [`DatasetError::Idx`] for images not `[n, 28, 28]`, labels not `[n]` or above 9, and
    /// [`DatasetError::CountMismatch`].
    pub fn from_arrays(
        images: IdxArray,
        labels: IdxArray,
        layout: SequenceLayout,
        source: DataSource,
    ) -> Result<Self, DatasetError> {
        let where_ = match &source {
            DataSource::Directory(p) | DataSource::Debian(p) | DataSource::Downloaded(p) => {
                p.clone()
            }
            DataSource::EmbeddedSample => PathBuf::from("<embedded>"),
        };
        if images.dims.len() != 3 || images.dims[1] != 28 || images.dims[2] != 28 {
            return Err(DatasetError::Idx {
                path: where_,
                reason: format!(
                    "images have dimensions {:?}, expected [n, 28, 28]",
                    images.dims
                ),
            });
        }
        if labels.dims.len() != 1 {
            return Err(DatasetError::Idx {
                path: where_,
                reason: format!("labels have dimensions {:?}, expected [n]", labels.dims),
            });
        }
        if images.dims[0] != labels.dims[0] {
            return Err(DatasetError::CountMismatch {
                images: images.dims[0],
                labels: labels.dims[0],
                dir: where_,
            });
        }
        if let Some(bad) = labels.data.iter().find(|&&l| l > 9) {
            return Err(DatasetError::Idx {
                path: where_,
                reason: format!("label {bad} is not a class 0..=9"),
            });
        }
        let permutation = match layout {
            SequenceLayout::Permuted { seed } => {
                let mut p: Vec<usize> = (0..PIXELS).collect();
                p.shuffle(&mut StdRng::seed_from_u64(seed));
                Some(p)
            }
            _ => None,
        };
        Ok(Self {
            images: images.data,
            labels: labels.data,
            layout,
            permutation,
            source,
        })
    }

    /// Where the data came from, for telling the user.
    pub fn source(&self) -> &DataSource {
        &self.source
    }

    /// `(steps, features)` of every item: `(28, 28)` for rows, `(784, 1)` for pixels.
    pub fn item_shape(&self) -> (usize, usize) {
        match self.layout {
            SequenceLayout::Rows => (28, 28),
            _ => (PIXELS, 1),
        }
    }
}

impl Dataset<SequenceItem> for Mnist {
    fn get(&self, index: usize) -> Result<SequenceItem, burn::data::dataset::DatasetError> {
        if index >= self.labels.len() {
            return Err(DatasetError::out_of_range(index, self.labels.len()));
        }
        let pixels = &self.images[index * PIXELS..(index + 1) * PIXELS];
        let label = self.labels[index] as usize;
        let scale = |p: u8| p as f32 / 255.0;
        let values = match &self.permutation {
            Some(perm) => perm.iter().map(|&i| scale(pixels[i])).collect(),
            None => pixels.iter().map(|&p| scale(p)).collect(),
        };
        let (steps, features) = self.item_shape();
        Ok(SequenceItem {
            values,
            steps,
            features,
            label,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// The directories searched before the fallbacks, in order.
fn candidate_dirs(options: &MnistOptions) -> Vec<PathBuf> {
    let name = options.kind.dir_name();
    let mut dirs = Vec::new();
    if let Some(dir) = &options.data_dir {
        dirs.push(dir.join(name));
        dirs.push(dir.clone());
    }
    if let Some(dir) = std::env::var_os(DATA_DIR_VAR).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        dirs.push(dir.join(name));
        dirs.push(dir);
    }
    if let Some(cache) = cache_dir() {
        dirs.push(cache.join(name));
    }
    dirs
}

/// `$XDG_CACHE_HOME/rnn-toolkit` or `$HOME/.cache/rnn-toolkit`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("rnn-toolkit"))
}

/// The file of `split` and `what` (`images-idx3` / `labels-idx1`) in `dir`, raw or gzipped.
fn find_file(dir: &Path, split: Split, what: &str) -> Option<PathBuf> {
    let stem = format!("{}-{what}-ubyte", split.prefix());
    [format!("{stem}.gz"), stem]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

fn has_files(dir: &Path, split: Split) -> bool {
    find_file(dir, split, "images-idx3").is_some() && find_file(dir, split, "labels-idx1").is_some()
}

fn read_pair(dir: &Path, split: Split) -> Result<(IdxArray, IdxArray), DatasetError> {
    let missing = || DatasetError::NotFound {
        dataset: "MNIST-format",
        searched: vec![dir.to_path_buf()],
        hint: "The directory needs train-/t10k- images-idx3 and labels-idx1 files, raw or .gz",
    };
    let images = find_file(dir, split, "images-idx3").ok_or_else(missing)?;
    let labels = find_file(dir, split, "labels-idx1").ok_or_else(missing)?;
    Ok((read_idx(&images)?, read_idx(&labels)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sample_is_real_and_balanced() {
        let train = Mnist::embedded(Split::Train, SequenceLayout::Rows).unwrap();
        let test = Mnist::embedded(Split::Test, SequenceLayout::Rows).unwrap();
        assert_eq!((train.len(), test.len()), (4000, 1000));
        let mut counts = [0usize; 10];
        for item in test.iter() {
            let item = item.unwrap();
            counts[item.label] += 1;
            assert_eq!(
                (item.steps, item.features, item.values.len()),
                (28, 28, 784)
            );
        }
        assert_eq!(counts, [100; 10]);
        // Real digits: a substantial share of ink, and no two images identical.
        let ink: f32 = test.get(0).unwrap().values.iter().sum();
        assert!(ink > 30.0, "{ink}");
        assert_ne!(test.get(0).unwrap().values, test.get(1).unwrap().values);
    }

    #[test]
    fn pixel_layouts_keep_the_same_pixels() {
        let rows = Mnist::embedded(Split::Test, SequenceLayout::Rows).unwrap();
        let pixels = Mnist::embedded(Split::Test, SequenceLayout::Pixels).unwrap();
        let permuted = Mnist::embedded(Split::Test, SequenceLayout::Permuted { seed: 1 }).unwrap();
        let (a, b, c) = (
            rows.get(5).unwrap(),
            pixels.get(5).unwrap(),
            permuted.get(5).unwrap(),
        );
        assert_eq!((b.steps, b.features), (784, 1));
        assert_eq!(a.values, b.values);
        assert_ne!(b.values, c.values);
        let mut sorted_b = b.values.clone();
        let mut sorted_c = c.values.clone();
        sorted_b.sort_by(f32::total_cmp);
        sorted_c.sort_by(f32::total_cmp);
        assert_eq!(sorted_b, sorted_c);
    }

    #[test]
    fn mirroring_reverses_each_row_and_twice_is_the_identity() {
        let item = SequenceItem {
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            steps: 2,
            features: 3,
            label: 7,
        };
        let mirrored = item.mirrored();
        assert_eq!(mirrored.values, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        assert_eq!(
            (mirrored.steps, mirrored.features, mirrored.label),
            (2, 3, 7)
        );
        assert_eq!(mirrored.mirrored(), item);
    }
}

#[cfg(test)]
mod debian_tests {
    use super::*;

    /// The real Fashion-MNIST from Debian's package (`.ci/run` installs it): full counts and
    /// labels 0..=9 with all ten classes present.
    #[test]
    fn loads_debian_fashion_mnist_when_installed() {
        if !Path::new(DEBIAN_FASHION_DIR).is_dir() {
            eprintln!("skipped: {DEBIAN_FASHION_DIR} not installed");
            return;
        }
        let options = |split| MnistOptions {
            download: false,
            ..MnistOptions::new(MnistKind::Fashion, split)
        };
        let (train, test) = (
            Mnist::load(&options(Split::Train)).unwrap(),
            Mnist::load(&options(Split::Test)).unwrap(),
        );
        assert_eq!((train.len(), test.len()), (60_000, 10_000));
        let mut seen = [false; 10];
        for i in (0..test.len()).step_by(97) {
            let item = test.get(i).unwrap();
            assert!(item.label <= 9);
            seen[item.label] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }
}

#[cfg(test)]
mod search_tests {
    use super::*;

    /// A directory holding valid IDX files is used before any fallback, and says so.
    #[test]
    fn explicit_directory_is_used_and_reported() {
        let dir = std::env::temp_dir().join(format!("rnn-mnist-dir-{}", std::process::id()));
        let sub = dir.join("fashion-mnist");
        std::fs::create_dir_all(&sub).unwrap();
        let idx = |magic: u8, dims: &[u32], data: Vec<u8>| {
            let mut v = vec![0, 0, 8, magic];
            for d in dims {
                v.extend_from_slice(&d.to_be_bytes());
            }
            v.extend(data);
            v
        };
        std::fs::write(
            sub.join("t10k-images-idx3-ubyte"),
            idx(3, &[2, 28, 28], vec![7; 2 * 784]),
        )
        .unwrap();
        std::fs::write(sub.join("t10k-labels-idx1-ubyte"), idx(1, &[2], vec![3, 9])).unwrap();
        let options = MnistOptions {
            data_dir: Some(dir.clone()),
            ..MnistOptions::new(MnistKind::Fashion, Split::Test)
        };
        let data = Mnist::load(&options).unwrap();
        assert_eq!(data.source(), &DataSource::Directory(sub.clone()));
        assert_eq!(data.len(), 2);
        assert_eq!(data.get(1).unwrap().label, 9);
        // Labels that disagree in count with the images are an error, not a short dataset.
        std::fs::write(
            sub.join("t10k-labels-idx1-ubyte"),
            idx(1, &[3], vec![3, 9, 1]),
        )
        .unwrap();
        assert!(matches!(
            Mnist::load(&options),
            Err(DatasetError::CountMismatch { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
