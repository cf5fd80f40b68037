//! Trains any of static-nn's image classifiers on any image data: the MNIST
//! family, CIFAR-10 or a folder of pictures, with the usual optimizers,
//! schedules, augmentation, a validation split, early stopping and
//! checkpoints that resume exactly.
//!
//! ```text
//! cargo run --release --example train -- --dataset mnist --model lenet
//! cargo run --release --example train -- --dataset fashion-mnist --model resnet --augment shift
//! cargo run --release --example train -- --dataset cifar10 --model cifar-resnet20 \
//!     --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov --weight-decay 5e-4 \
//!     --schedule cosine --warmup-epochs 1 --augment crop-flip --epochs 30 \
//!     --checkpoint-dir runs/cifar
//! cargo run --release --example train -- ... --checkpoint-dir runs/cifar --resume
//! cargo run --release --example train -- --dataset folder --data photos/ --model cifar-resnet20
//! ```
//!
//! It writes `OUT/<model>.safetensors`, `OUT/predictions.png` and
//! `OUT/loss.png`, and its last line is `test accuracy: P% (N/M)`, M being
//! the size of the test set.
#[macro_use]
mod common;

use clap::{Parser, ValueEnum};
use static_nn::data::{
    Augment, DataLoader, DatasetName, ImageDataset, LoadOptions, LoaderConfig, Normalize,
};
use static_nn::models::{ModelName, NotebookModel};
use static_nn::prelude::*;
use static_nn::shapes::{ImageInput, ImageShape};
use static_nn::train::{
    default_device, Classifier, DeviceChoice, ImageClassifier, LrSchedule, OptimizerConfig,
    Schedule, TrainEvent, TrainOptions,
};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Opt {
    Sgd,
    Adam,
    Adamw,
    Rmsprop,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Sched {
    /// The same learning rate throughout.
    Constant,
    /// StepLR: times --gamma every --step-size epochs.
    Step,
    /// Cosine annealing per epoch down to 1% of the learning rate.
    Cosine,
    /// OneCycleLR per batch, peaking at --lr.
    OneCycle,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Aug {
    /// No augmentation.
    None,
    /// Random shifts of up to --shift pixels (MNIST-style).
    Shift,
    /// Random crop with --crop-padding pixels of zero padding and a
    /// horizontal flip (CIFAR-style).
    CropFlip,
    /// Random crop with padding only.
    Crop,
    /// Horizontal flip only.
    Flip,
}

/// Train a typed image classifier on any image data.
#[derive(Parser, Debug)]
#[command(
    about = "Train a static-nn image classifier on MNIST, Fashion-MNIST, KMNIST, CIFAR-10 or a folder of pictures",
    long_about = None
)]
struct Args {
    /// The data set.
    #[arg(long, default_value = "mnist")]
    dataset: DatasetName,
    /// Its directory (else the data set's environment variable, the cache,
    /// or a download); for `folder`, the directory with `train/` and `test/`.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Skip the checksum checks (for files you made or converted yourself).
    #[arg(long)]
    no_verify: bool,
    /// With `--dataset folder`: skip files that are not pictures (with a
    /// warning) instead of stopping.
    #[arg(long)]
    skip_bad_images: bool,
    /// The network: lenet, lenet-seq, lenet5, mlp, resnet (1×28×28) or
    /// cifar-resnet20 (3×32×32).
    #[arg(long, default_value = "lenet")]
    model: ModelName,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: Opt,
    /// Learning rate [default: 0.1 for sgd, 0.01 for rmsprop, else 0.001].
    #[arg(long)]
    lr: Option<f64>,
    /// SGD and RMSprop momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f64,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    nesterov: bool,
    /// Weight decay: L2 for sgd, adam and rmsprop; decoupled for adamw
    /// [default: 0, or 0.01 for adamw].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: Sched,
    /// StepLR's period in epochs.
    #[arg(long, default_value_t = 10)]
    step_size: usize,
    /// StepLR's factor.
    #[arg(long, default_value_t = 0.1)]
    gamma: f64,
    /// Epochs of linear warm-up before the schedule.
    #[arg(long, default_value_t = 0)]
    warmup_epochs: usize,
    /// Clip the gradients to this total L2 norm.
    #[arg(long)]
    clip_grad_norm: Option<f64>,
    /// Augmentation of the training images [default: crop-flip for 3-channel
    /// data, else none].
    #[arg(long, value_enum)]
    augment: Option<Aug>,
    /// Pixels of random shift for `--augment shift`.
    #[arg(long, default_value_t = 2)]
    shift: usize,
    /// Zero padding of the random crop.
    #[arg(long, default_value_t = 4)]
    crop_padding: usize,
    /// Normalise by the training set's per-channel mean and std.
    #[arg(long)]
    normalize: bool,
    /// Fraction of the training set held out for validation (seeded).
    #[arg(long, default_value_t = 0.0)]
    val_split: f64,
    /// Stop when the validation accuracy has not improved for N epochs.
    #[arg(long)]
    early_stop: Option<usize>,
    /// Write a checkpoint here after every epoch.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Carry on from the checkpoint in --checkpoint-dir.
    #[arg(long)]
    resume: bool,
    /// Seed of the weights, the data order, the augmentation, dropout and
    /// the validation split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Train on the first N training images only (after the validation split).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Output directory for the weights and pictures.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Train data-parallel over the ranks of an MPI job (under `mpirun`;
    /// needs the `distributed` feature): each rank takes its slice of every
    /// global batch of --batch-size, the gradients are averaged, rank 0
    /// prints and writes the files. BatchNorm statistics stay per rank.
    #[arg(long)]
    distributed: bool,
}

fn main() {
    let args = Args::parse();
    let ranks = match common::Ranks::start(args.distributed) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    // on a rayon worker: see `common::on_workers`
    if let Err(e) = common::on_workers(|| run(&args, &ranks).map_err(|e| e.to_string())) {
        ranks.fail(&e);
    }
}

fn check(args: &Args) -> Result<(), String> {
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    if args.epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    if args.resume && args.checkpoint_dir.is_none() {
        return Err("--resume needs --checkpoint-dir".into());
    }
    if args.early_stop.is_some() && args.val_split <= 0.0 {
        return Err("--early-stop needs a validation set: give --val-split".into());
    }
    if args.dataset == DatasetName::Folder && args.data.is_none() {
        return Err(
            "--dataset folder needs --data DIR (with train/<class>/ and test/<class>/)".into(),
        );
    }
    Ok(())
}

fn run(args: &Args, ranks: &common::Ranks) -> Result<(), Box<dyn std::error::Error>> {
    check(args)?;
    let data = load(args)?;
    match default_device(args.seed) {
        DeviceChoice::Cpu(dev, why) => {
            say!("device: CPU ({why})");
            dispatch(dev, args, data, ranks)
        }
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda(dev) => {
            say!("device: CUDA");
            dispatch(dev, args, data, ranks)
        }
    }
}

/// Loads the data set at the model's image size, printing its warnings.
fn load(args: &Args) -> Result<ImageDataset, Box<dyn std::error::Error>> {
    let mut opts = LoadOptions::from_env(args.data.as_deref());
    opts.verify = !args.no_verify;
    opts.image = Some(args.model.image());
    opts.skip_bad = args.skip_bad_images;
    opts.observer = Some(Arc::new(common::download_progress()));
    let data = args.dataset.source()?.load(&opts)?;
    for w in data.warnings().iter().filter(|_| common::is_root()) {
        eprintln!("warning: {w}");
    }
    let (c, h, w) = (data.train.channels, data.train.rows, data.train.cols);
    if (c, h, w) != args.model.image() {
        let (mc, mh, mw) = args.model.image();
        return Err(format!(
            "model {} takes {mc}×{mh}×{mw} images (C×H×W); data set {} holds {c}×{h}×{w}",
            args.model, data.name
        )
        .into());
    }
    say!(
        "{}: {} training and {} test images of {c}×{h}×{w}, {} classes; model {}",
        data.name,
        data.train.len(),
        data.test.len(),
        data.class_names.len(),
        args.model
    );
    Ok(data)
}

/// Picks the model type at run time.
fn dispatch<D>(
    dev: D,
    args: &Args,
    data: ImageDataset,
    ranks: &common::Ranks,
) -> Result<(), Box<dyn std::error::Error>>
where
    D: Device<f32>
        + static_nn::TypedErrors
        + static_nn::ops::LayerKernels<f32>
        + Cache
        + DeviceBuildExt,
    // each device has its own `ImageClassifier` (side-by-side replicas on
    // the CPU): generic code names the models it picks from
    <LeNetClass as BuildOnDevice<D, f32>>::Built:
        ImageClassifier<D> + ImageInput<Image = Rank3<1, 28, 28>>,
    <LeNetSeq as BuildOnDevice<D, f32>>::Built:
        ImageClassifier<D> + ImageInput<Image = Rank3<1, 28, 28>>,
    <LeNet5 as BuildOnDevice<D, f32>>::Built:
        ImageClassifier<D> + ImageInput<Image = Rank3<1, 28, 28>>,
    <Mlp as BuildOnDevice<D, f32>>::Built:
        ImageClassifier<D> + ImageInput<Image = Rank3<1, 28, 28>>,
    <MnistResNet as BuildOnDevice<D, f32>>::Built:
        ImageClassifier<D> + ImageInput<Image = Rank3<1, 28, 28>>,
    <CifarResNet20 as BuildOnDevice<D, f32>>::Built:
        ImageClassifier<D> + ImageInput<Image = Rank3<3, 32, 32>>,
{
    dev.enable_cache();
    match args.model {
        ModelName::Notebook(NotebookModel::LeNet) => train::<LeNetClass, D>(dev, args, data, ranks),
        ModelName::Notebook(NotebookModel::LeNetSeq) => {
            train::<LeNetSeq, D>(dev, args, data, ranks)
        }
        ModelName::Notebook(NotebookModel::LeNet5) => train::<LeNet5, D>(dev, args, data, ranks),
        ModelName::Notebook(NotebookModel::Mlp) => train::<Mlp, D>(dev, args, data, ranks),
        ModelName::Notebook(NotebookModel::ResNet) => {
            train::<MnistResNet, D>(dev, args, data, ranks)
        }
        ModelName::CifarResNet20 => train::<CifarResNet20, D>(dev, args, data, ranks),
    }
}

fn optimizer(args: &Args) -> OptimizerConfig {
    let wd = |default: f64| args.weight_decay.unwrap_or(default);
    match args.optimizer {
        Opt::Sgd => OptimizerConfig::Sgd {
            lr: args.lr.unwrap_or(0.1),
            momentum: args.momentum,
            dampening: 0.0,
            nesterov: args.nesterov,
            weight_decay: wd(0.0),
        },
        // PyTorch's defaults for betas, eps and alpha
        Opt::Adam => OptimizerConfig::Adam {
            lr: args.lr.unwrap_or(1e-3),
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: wd(0.0),
        },
        Opt::Adamw => OptimizerConfig::AdamW {
            lr: args.lr.unwrap_or(1e-3),
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: wd(0.01),
        },
        Opt::Rmsprop => OptimizerConfig::RMSprop {
            lr: args.lr.unwrap_or(0.01),
            alpha: 0.99,
            eps: 1e-8,
            momentum: args.momentum,
            weight_decay: wd(0.0),
            centered: false,
        },
    }
}

fn schedule(args: &Args, lr: f64) -> Schedule {
    let kind = match args.schedule {
        Sched::Constant => LrSchedule::Constant,
        Sched::Step => LrSchedule::Step {
            step_size: args.step_size,
            gamma: args.gamma,
        },
        Sched::Cosine => LrSchedule::cosine(lr / 100.0),
        Sched::OneCycle => LrSchedule::one_cycle(lr),
    };
    Schedule::with_warmup(kind, args.warmup_epochs)
}

fn augment(args: &Args, channels: usize) -> Option<Augment> {
    let aug = args.augment.unwrap_or(if channels == 3 {
        Aug::CropFlip
    } else {
        Aug::None
    });
    let a = match aug {
        Aug::None => return None,
        Aug::Shift => Augment::shifts(args.shift),
        Aug::CropFlip => Augment::crop_flip(args.crop_padding),
        Aug::Crop => Augment {
            crop_padding: args.crop_padding,
            ..Default::default()
        },
        Aug::Flip => Augment {
            hflip: true,
            ..Default::default()
        },
    };
    Some(a)
}

fn train<Net, D>(
    dev: D,
    args: &Args,
    data: ImageDataset,
    ranks: &common::Ranks,
) -> Result<(), Box<dyn std::error::Error>>
where
    D: Device<f32> + static_nn::TypedErrors + DeviceBuildExt,
    Net: BuildOnDevice<D, f32> + InferShape<<Net::Built as ImageInput>::Image>,
    Net::Built: ImageClassifier<D> + TensorCollection<f32, D, To<f32, D> = Net::Built>,
{
    say!("{}", summary::<Net, <Net::Built as ImageInput>::Image>());
    let classes = static_nn::train::classes_of::<Net::Built, D>();
    if data.class_names.len() > classes {
        return Err(format!(
            "model {} has {classes} outputs; data set {} has {} classes",
            args.model,
            data.name,
            data.class_names.len()
        )
        .into());
    }
    let (train_set, val_set) = if args.val_split > 0.0 {
        let (t, v) = data.train.split_validation(args.val_split, args.seed)?;
        (t, Some(v))
    } else {
        (data.train, None)
    };
    let train_set = match args.train_limit {
        Some(n) => train_set.subset(0..n.min(train_set.len())),
        None => train_set,
    };
    let normalize = args.normalize.then(|| Normalize::of(&train_set));
    let channels = <<Net::Built as ImageInput>::Image as ImageShape>::CHANNELS;
    let train_cfg = LoaderConfig {
        batch_size: args.batch_size,
        shuffle: Some(args.seed),
        augment: augment(args, channels),
        normalize: normalize.clone(),
        ..Default::default()
    };
    let eval_cfg = LoaderConfig {
        batch_size: 1000,
        normalize,
        ..Default::default()
    };
    say!(
        "{} training, {} validation images; augmentation {:?}",
        train_set.len(),
        val_set.as_ref().map_or(0, |v| v.len()),
        train_cfg.augment
    );
    let train_loader = DataLoader::new(Arc::new(train_set), train_cfg);
    let val_loader = val_set.map(|v| DataLoader::new(Arc::new(v), eval_cfg.clone()));
    let test_loader = DataLoader::new(Arc::new(data.test), eval_cfg);

    let model = dev
        .try_build_module::<Net, f32>()
        .map_err(|e| format!("building the model: {e:?}"))?;
    let opt = optimizer(args);
    say!(
        "{} trainable parameters; {opt:?}, batch {}, {} epochs",
        model.num_trainable_params(),
        args.batch_size,
        args.epochs
    );
    let mut clf = Classifier::try_new(model, dev, opt)?;
    clf.set_clip_grad_norm(args.clip_grad_norm)?;
    clf.set_seed(Some(args.seed));
    if let Some(comm) = ranks.collective() {
        clf.distribute(comm)?;
    }
    if clf.is_root() {
        clf.set_observer(observer(args.quiet));
    }
    if args.resume {
        let dir = args
            .checkpoint_dir
            .as_deref()
            .unwrap_or(std::path::Path::new("."));
        let run = clf.resume(dir)?;
        say!("resumed from {} after epoch {}", dir.display(), run.epoch);
    }
    let opts = TrainOptions {
        epochs: args.epochs,
        schedule: schedule(args, opt.lr()),
        early_stop: args.early_stop,
        checkpoint_dir: args.checkpoint_dir.clone(),
    };
    let report = clf.train(&train_loader, val_loader.as_ref(), &opts)?;
    let total: f64 = clf.history.iter().map(|s| s.seconds).sum();
    say!(
        "training time: {total:.1} s over {} epochs{}",
        report.epochs,
        if report.stopped_early {
            " (stopped early)"
        } else {
            ""
        }
    );

    let name = args.model.name();
    let title = format!("{name} on {}: training loss", data.name);
    common::finish_run(
        &clf,
        &test_loader,
        &data.class_names,
        &args.out,
        name,
        &title,
    )
}

/// The examples' progress display, plus the validation, checkpoint and
/// early-stopping lines.
fn observer(quiet: bool) -> impl Fn(TrainEvent) + Send + Sync {
    let progress = common::train_progress(quiet);
    move |e| match e {
        TrainEvent::Validated {
            epoch,
            accuracy,
            best,
        } => {
            say!("  validation accuracy after epoch {epoch}: {accuracy:.2}% (best {:.2}% at epoch {})", best.1, best.0);
        }
        TrainEvent::CheckpointSaved { path, .. } => {
            say!("  checkpoint: {}", path.display());
        }
        TrainEvent::EarlyStopped {
            epoch,
            patience,
            best,
        } => {
            say!("early stop after epoch {epoch}: no better validation accuracy for {patience} epochs (best {:.2}% at epoch {})", best.1, best.0);
        }
        other => progress(other),
    }
}
