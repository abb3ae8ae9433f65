//! What `mnist_rnn` and `mnist_birnn` share: the data flags, the model (an LSTM over image
//! rows and a linear classifier on its final hidden state) and the objective.

use std::path::PathBuf;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, InMemDataset};
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use clap::{Args, ValueEnum};
use rnn_datasets::{
    Mnist, MnistKind, MnistOptions, SequenceBatcher, SequenceItem, SequenceLayout, Split,
};
use rnn_models::{CellKind, Recurrent, RecurrentConfig, last_layer};
use rnn_train::{
    ConfusionMatrix, Objective, Optimizer, Schedule, StepOutput, TrainConfig, TrainError, evaluate,
    fit, tasks,
};

use crate::{CommonArgs, TrainArgs};

/// Which data, and where to find it.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// fashion: Fashion-MNIST rows; mnist: digit rows; pixel: digits one pixel per step;
    /// permuted: pixels in a fixed random order.
    #[arg(long, value_enum, default_value_t = DatasetChoice::Fashion)]
    pub dataset: DatasetChoice,
    /// Directory with the IDX files (or `mnist/` / `fashion-mnist/` inside it). Else
    /// $RNN_DATA_DIR, the cache, Debian's dataset-fashion-mnist, the embedded digit sample.
    #[arg(long, value_parser = crate::existing_dir)]
    pub data_dir: Option<PathBuf>,
    /// Use only this many training images (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Never download; use only local files (or the embedded digit sample).
    #[arg(long)]
    pub no_download: bool,
}

/// The `--dataset` choices.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DatasetChoice {
    /// Fashion-MNIST, rows as time steps.
    Fashion,
    /// MNIST digits, rows as time steps.
    Mnist,
    /// MNIST digits, 784 steps of one pixel.
    Pixel,
    /// MNIST digits, 784 steps of one pixel in a fixed permuted order.
    Permuted,
}

impl DataArgs {
    /// Which images, read in which order.
    fn kind_and_layout(&self) -> (MnistKind, SequenceLayout) {
        match self.dataset {
            DatasetChoice::Fashion => (MnistKind::Fashion, SequenceLayout::Rows),
            DatasetChoice::Mnist => (MnistKind::Digits, SequenceLayout::Rows),
            DatasetChoice::Pixel => (MnistKind::Digits, SequenceLayout::Pixels),
            DatasetChoice::Permuted => (MnistKind::Digits, SequenceLayout::Permuted { seed: 0 }),
        }
    }

    /// Loads the train and test splits and says where they came from.
    ///
    /// On a first run with nothing at hand — Fashion-MNIST asked for by default, no
    /// `--data-dir`, no files in `$RNN_DATA_DIR` or the cache, no Debian package and no network —
    /// this trains on the embedded 5,000-digit MNIST sample instead, with a one-line notice,
    /// so the main job runs anywhere. `--data-dir` given and empty stays an error.
    ///
    /// # Errors
    /// When no data is found or a file is malformed.
    pub fn load(&self) -> Result<Loaded, rnn_datasets::DatasetError> {
        let (kind, layout) = self.kind_and_layout();
        match self.load_kind(kind, layout) {
            Err(rnn_datasets::DatasetError::NotFound { .. })
                if kind == MnistKind::Fashion && self.data_dir.is_none() =>
            {
                eprintln!(
                    "note: Fashion-MNIST is not on this machine and could not be downloaded; \
                     training on the embedded MNIST digit sample instead \
                     (`apt-get install dataset-fashion-mnist` gets the real data offline)"
                );
                self.load_kind(MnistKind::Digits, layout)
            }
            loaded => loaded,
        }
    }

    fn load_kind(
        &self,
        kind: MnistKind,
        layout: SequenceLayout,
    ) -> Result<Loaded, rnn_datasets::DatasetError> {
        let options = |split| MnistOptions {
            layout,
            data_dir: self.data_dir.clone(),
            download: !self.no_download,
            ..MnistOptions::new(kind, split)
        };
        let train = Mnist::load(&options(Split::Train))?;
        let test = Mnist::load(&options(Split::Test))?;
        eprintln!(
            "data: {} ({} train, {} test)",
            train.source(),
            train.len(),
            test.len()
        );
        Ok(Loaded {
            train,
            test,
            classes: kind.class_names(),
        })
    }
}

/// The data a run trains and tests on.
#[derive(Debug)]
pub struct Loaded {
    /// The training split (before `--limit`).
    pub train: Mnist,
    /// The test split, read once after training.
    pub test: Mnist,
    /// The ten class names of the images actually loaded.
    pub classes: [&'static str; 10],
}

/// A recurrent layer (LSTM by default) over the sequence and a linear layer on the final
/// hidden state (both directions' when bidirectional).
#[derive(Module, Debug)]
pub struct RowClassifier {
    rnn: Recurrent,
    dropout: Dropout,
    out: Linear,
}

impl RowClassifier {
    /// The recurrent layer `layer` (batch-first), then dropout with probability `dropout` on
    /// its final hidden state while training, then a linear read-out to 10 classes.
    ///
    /// # Errors
    /// For impossible sizes or a dropout probability outside `[0, 1)`.
    pub fn new(
        layer: &RecurrentConfig,
        dropout: f64,
        device: &Device,
    ) -> Result<Self, rnn_models::ModelError> {
        if !crate::is_dropout_probability(dropout) {
            return Err(rnn_models::ModelError::InvalidConfig {
                field: "dropout",
                value: dropout.to_string(),
                expected: "in [0, 1)",
            });
        }
        let rnn = layer.clone().with_batch_first(true).init(device)?;
        let features = rnn.info().output_size;
        Ok(Self {
            rnn,
            dropout: DropoutConfig::new(dropout).init(),
            out: LinearConfig::new(features, 10).init(device),
        })
    }

    /// Class logits `[batch, 10]` for `x: [batch, steps, features]`.
    ///
    /// # Errors
    /// For a wrongly shaped input.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<2>, rnn_models::ModelError> {
        let (_, state) = self.rnn.forward(x, None)?;
        let h = last_layer(state.into_h(), self.rnn.info().directions());
        Ok(self.out.forward(self.dropout.forward(h)))
    }
}

/// Cross-entropy on the ten classes; each evaluation pass also fills `confusion`.
pub struct Classify {
    /// Test labels against predictions of the latest evaluation pass.
    pub confusion: ConfusionMatrix,
    evaluating: bool,
    /// Mirror half of the training images, drawn anew each epoch from this seed.
    mirror_seed: Option<u64>,
    epoch: usize,
}

impl Classify {
    /// An objective over the classes named `classes`.
    pub fn new(classes: [&str; 10]) -> Self {
        Self {
            confusion: ConfusionMatrix::new(classes),
            evaluating: false,
            mirror_seed: None,
            epoch: 0,
        }
    }

    /// Augments training batches: each image is mirrored left–right with probability ½,
    /// drawn from `seed`, the epoch and the image itself — the same in a resumed run, on any
    /// number of devices, in any batch order. Validation and test images are never mirrored.
    pub fn with_mirroring(mut self, seed: u64) -> Self {
        self.mirror_seed = Some(seed);
        self
    }

    /// Whether training image `item` is mirrored in the current epoch.
    fn mirrors(&self, item: &SequenceItem) -> bool {
        let Some(seed) = self.mirror_seed else {
            return false;
        };
        let mut h = seed ^ (self.epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for v in &item.values {
            h = splitmix64(h ^ u64::from(v.to_bits()));
        }
        h & 1 == 1
    }
}

/// SplitMix64's finalizer: a cheap, well-mixed hash step.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Objective<RowClassifier> for Classify {
    type Item = SequenceItem;

    fn step(
        &mut self,
        model: &RowClassifier,
        batch: Vec<SequenceItem>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let batch = if self.evaluating || self.mirror_seed.is_none() {
            batch
        } else {
            let flip = |item: SequenceItem| {
                if self.mirrors(&item) {
                    item.mirrored()
                } else {
                    item
                }
            };
            batch.into_iter().map(flip).collect()
        };
        let batch = SequenceBatcher.batch(batch, device);
        let logits = model.forward(batch.input)?;
        let (output, predicted) = tasks::classification_with_predictions(logits, &batch.labels)?;
        if self.evaluating {
            self.confusion.record(&batch.labels, &predicted);
        }
        Ok(output)
    }

    fn start_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    fn start_pass(&mut self, training: bool) {
        self.evaluating = !training;
        if self.evaluating {
            self.confusion.clear();
        }
    }
}

/// `limit` items spread evenly over the dataset (all when `None`): every class keeps its
/// share even where the files are sorted by label, as the embedded digit sample is.
pub fn take(data: Mnist, limit: Option<usize>) -> InMemDataset<SequenceItem> {
    let len = data.len();
    let n = limit.unwrap_or(usize::MAX).min(len);
    InMemDataset::new((0..n).filter_map(|k| data.get(k * len / n).ok()).collect())
}

/// Classify MNIST-family images read as sequences with an LSTM (`mnist_rnn`) or a
/// bidirectional LSTM (`mnist_birnn`), as in the TensorFlow tutorial.
#[derive(Debug, clap::Parser)]
pub struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Hidden units per direction.
    #[arg(long, default_value_t = 128, value_parser = crate::at_least_one)]
    hidden: usize,
    /// The recurrent cell (the tutorial's is the LSTM).
    #[arg(long, value_enum, default_value_t = CellKind::Lstm)]
    cell: CellKind,
    /// Dropout on the final hidden state, before the classifier (training only).
    #[arg(long, default_value_t = 0.0, value_parser = crate::probability)]
    dropout: f64,
    /// Augment the training images: mirror each left–right with probability ½, drawn anew
    /// every epoch (`fashion` and `mnist` datasets, read by rows).
    #[arg(long)]
    mirror: bool,
    /// Input dropout: one mask per sequence on the features of every step (a dropped pixel
    /// column stays dropped over all rows of the image); the fused kernels keep running
    /// [default: 0.1 for `mnist_birnn`, 0 for `mnist_rnn`].
    #[arg(long, value_parser = crate::probability)]
    input_dropout: Option<f64>,
    /// Recurrent dropout: one mask per sequence on `h` where it enters the recurrent weights,
    /// fixed over the time steps (Keras' `recurrent_dropout`; training then takes the
    /// composed engine).
    #[arg(long, default_value_t = 0.0, value_parser = crate::probability)]
    recurrent_dropout: f64,
}

impl Cli {
    /// The recurrent layer these flags ask for over `features` inputs per step, with the
    /// program's [`Defaults`] where a flag is absent.
    pub fn layer(&self, features: usize, bidirectional: bool) -> RecurrentConfig {
        let defaults = Defaults::of(bidirectional);
        RecurrentConfig::new(self.cell, features, self.hidden)
            .with_bidirectional(bidirectional)
            .with_input_dropout(self.input_dropout.unwrap_or(defaults.input_dropout))
            .with_recurrent_dropout(self.recurrent_dropout)
    }

    /// The training run these flags ask for, with the program's [`Defaults`] where a flag is
    /// absent: the tutorial's Adam 1e-3, the rate cut to 3e-4 after 10 epochs and to 9e-5 after
    /// 20 (the tutorial's few epochs plateau near 88 % on Fashion-MNIST, hence 25 epochs).
    pub fn training(&self, bidirectional: bool) -> TrainConfig {
        let defaults = Defaults::of(bidirectional);
        TrainConfig {
            schedule: Schedule::Step {
                every: 10,
                gamma: 0.3,
            },
            ..self.train.config(
                self.common.seed,
                defaults.epochs,
                defaults.batch_size,
                Optimizer::adam(1e-3),
            )
        }
    }
}

/// What the two programs choose differently where no flag is given: chosen on a validation
/// split of the training data, never on the test set (examples/README.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// Passes over the training data.
    pub epochs: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Input dropout probability.
    pub input_dropout: f64,
}

impl Defaults {
    /// The LSTM (`mnist_rnn`): batches of 64 (seeds 0–1 on validation: 90.3 % against 90.1 %
    /// for the tutorial's 128), no input dropout.
    pub const LSTM: Self = Self {
        epochs: 25,
        batch_size: 64,
        input_dropout: 0.0,
    };
    /// The BiLSTM (`mnist_birnn`): batches of 64 and input dropout 0.1 (seeds 0–1 on
    /// validation: 91.1 % against 90.5 % for batches of 128 without dropout).
    pub const BILSTM: Self = Self {
        epochs: 25,
        batch_size: 64,
        input_dropout: 0.1,
    };

    /// The program's defaults.
    pub fn of(bidirectional: bool) -> Self {
        if bidirectional {
            Self::BILSTM
        } else {
            Self::LSTM
        }
    }
}

/// The whole program: load the data, train the TensorFlow tutorial's setup (Adam 1e-3, the
/// rate × 0.3 every 10 epochs) with [`Defaults`] where no flag is given, report the test
/// accuracy.
///
/// # Errors
/// Missing data, a backend that cannot start, a failed training step.
pub fn run(cli: Cli, bidirectional: bool) -> anyhow::Result<()> {
    // A mirror image needs rows of pixels; checked before any work.
    if cli.mirror
        && !matches!(
            cli.data.dataset,
            DatasetChoice::Fashion | DatasetChoice::Mnist
        )
    {
        anyhow::bail!("--mirror needs images read by rows (--dataset fashion or mnist)");
    }
    let selected = cli.common.select()?;
    let Loaded {
        train,
        test,
        classes,
    } = cli.data.load()?;
    let (steps, features) = train.item_shape();
    eprintln!("sequences: {steps} steps of {features} features");
    let train = take(train, cli.data.limit);

    let device = selected.training_device();
    let layer = cli.layer(features, bidirectional);
    let model = RowClassifier::new(&layer, cli.dropout, &device)?;
    let program = if bidirectional {
        "mnist_birnn"
    } else {
        "mnist_rnn"
    };
    let config = TrainConfig {
        run_info: Some(crate::run_info(program, &selected)),
        ..cli.training(bidirectional)
    };
    // The test set is read once, after training; per-epoch validation comes from the training
    // data (--valid-fraction).
    let mut classify = Classify::new(classes);
    if cli.mirror {
        classify = classify.with_mirroring(cli.common.seed);
    }
    let (fit_train, valid) = cli.train.split(&train, cli.common.seed)?;
    let valid = valid.as_ref().map(|v| v as &dyn Dataset<_>);
    let devices = cli.train.devices(&selected)?;
    let fitted = fit(&config, model, &mut classify, &fit_train, valid, devices)?;

    let metrics = evaluate(&fitted.model, &mut classify, &test, 500, selected.device())?;
    println!(
        "Testing Accuracy: {:.2}%",
        metrics.accuracy.unwrap_or(0.0) * 100.0
    );
    if let Some(dir) = &cli.train.out {
        crate::report_classifier(dir, &config, &fitted.history, &metrics, &classify.confusion)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use burn::data::dataset::Dataset;
    use rnn_datasets::{Mnist, SequenceLayout, Split};

    #[test]
    fn flags_override_each_programs_defaults() {
        use clap::Parser;
        let parse = |args: &[&str]| super::Cli::try_parse_from(args).unwrap();
        let plain = parse(&["mnist_birnn"]);
        assert_eq!(plain.layer(28, true).input_dropout, 0.1);
        assert_eq!(plain.training(true).batch_size, 64);
        assert_eq!(plain.layer(28, false).input_dropout, 0.0);
        assert_eq!(plain.training(false).batch_size, 64);
        assert_eq!(plain.training(true).epochs, 25);

        let set = parse(&["mnist_birnn", "--input-dropout", "0", "--batch-size", "128"]);
        assert_eq!(set.layer(28, true).input_dropout, 0.0);
        assert_eq!(set.training(true).batch_size, 128);
        assert!(super::Cli::try_parse_from(["mnist_birnn", "--input-dropout", "1.5"]).is_err());
    }

    #[test]
    fn a_limit_keeps_every_class_of_a_sample_sorted_by_label() {
        let sample = Mnist::embedded(Split::Train, SequenceLayout::Rows).unwrap();
        let subset = super::take(sample, Some(200));
        assert_eq!(subset.len(), 200);
        let mut per_class = [0usize; 10];
        for i in 0..subset.len() {
            per_class[subset.get(i).unwrap().label] += 1;
        }
        // 400 of each digit in the sample: 20 of each in an evenly spread 200.
        assert!(
            per_class.iter().all(|&n| (15..=25).contains(&n)),
            "{per_class:?}"
        );
    }

    #[test]
    fn mirroring_picks_about_half_anew_each_epoch_and_repeatably() {
        use rnn_train::Objective;
        let sample = Mnist::embedded(Split::Train, SequenceLayout::Rows).unwrap();
        let items: Vec<_> = (0..400).map(|i| sample.get(i * 10).unwrap()).collect();
        let picks = |classify: &mut super::Classify, epoch| -> Vec<bool> {
            <super::Classify as Objective<super::RowClassifier>>::start_epoch(classify, epoch);
            items.iter().map(|item| classify.mirrors(item)).collect()
        };
        let names = rnn_datasets::MnistKind::Digits.class_names();
        let mut plain = super::Classify::new(names);
        assert!(picks(&mut plain, 0).iter().all(|&m| !m));
        let mut a = super::Classify::new(names).with_mirroring(3);
        let mut b = super::Classify::new(names).with_mirroring(3);
        let first = picks(&mut a, 0);
        let count = first.iter().filter(|&&m| m).count();
        // Binomial(400, ½): 200 ± 10 standard deviation.
        assert!((160..=240).contains(&count), "{count} of 400 mirrored");
        assert_eq!(
            picks(&mut b, 0),
            first,
            "the same seed and epoch pick the same images"
        );
        let second = picks(&mut a, 1);
        let changed = first.iter().zip(&second).filter(|(x, y)| x != y).count();
        assert!((160..=240).contains(&changed), "{changed} of 400 changed");
    }
}
