//! Evaluates saved weights on the MNIST test set, or classifies one picture.
//!
//! ```text
//! cargo run --release --example infer -- --model lenet --weights out/lenet.safetensors
//! cargo run --release --example infer -- --model lenet --weights out/lenet.safetensors --image digit.png
//! cargo run --release --features cuda --example infer -- --model lenet --weights out/lenet.safetensors --predictions out/preds.txt
//! ```
//!
//! The weights may come from the `lenet` example or from PyTorch
//! (`safetensors.torch.save_file(model.state_dict(), path)` of the notebook's
//! models). Evaluation prints `test accuracy: 99.14% (9914/10000)` as its last
//! line. With `--image`, the picture (any size, any colour) is converted to a
//! 28×28 grey digit the way MNIST was made, and the digit and its probability
//! are printed. A bad weights file exits non-zero with the loader's error.
//! It runs where `lenet` trains (CUDA when built with `cuda` and a GPU is
//! present, else the CPU, said on the `device:` line), or on the CPU with
//! `--cpu`; `--predictions` also writes the predicted digit of each test image,
//! one a line, to compare devices.
mod common;

use clap::Parser;
use static_nn::data::{Batch, DataLoader, IdxDataset, LoaderConfig, LocateOptions, Split, MNIST};
use static_nn::models::NotebookModel;
use static_nn::prelude::*;
use static_nn::train::{
    default_device, Classifier, DeviceChoice, ImageClassifier, OptimizerConfig,
};
use std::path::PathBuf;
use std::sync::Arc;

/// Evaluate or apply saved weights.
#[derive(Parser, Debug)]
#[command(about, long_about = None)]
struct Args {
    /// Which network the weights belong to: lenet, lenet-seq, lenet5, mlp or resnet.
    #[arg(long)]
    model: NotebookModel,
    /// A safetensors file with the model's weights (PyTorch names).
    #[arg(long)]
    weights: PathBuf,
    /// Directory with the MNIST files (else $MNIST_DIR, the cache, or a download).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Classify this picture of a digit instead of evaluating the test set.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Run on the CPU even when built with `cuda` and a GPU is present.
    #[arg(long)]
    cpu: bool,
    /// Also write the predicted digit of each test image, one a line, here.
    #[arg(long)]
    predictions: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let result = if args.cpu {
        println!("device: CPU (--cpu)");
        on_device(Cpu::default(), &args)
    } else {
        match default_device(0) {
            DeviceChoice::Cpu(dev, why) => {
                println!("device: CPU ({why})");
                on_device(dev, &args)
            }
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda(dev) => {
                println!("device: CUDA");
                on_device(dev, &args)
            }
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Picks the model type at run time.
fn on_device<D>(dev: D, args: &Args) -> Result<(), Box<dyn std::error::Error>>
where
    D: Device<f32>
        + static_nn::TypedErrors
        + static_nn::ops::LayerKernels<f32>
        + Cache
        + DeviceBuildExt,
    // each device has its own `ImageClassifier` (side-by-side replicas on
    // the CPU): generic code names the models it picks from
    <LeNetClass as BuildOnDevice<D, f32>>::Built: ImageClassifier<D>,
    <LeNetSeq as BuildOnDevice<D, f32>>::Built: ImageClassifier<D>,
    <LeNet5 as BuildOnDevice<D, f32>>::Built: ImageClassifier<D>,
    <Mlp as BuildOnDevice<D, f32>>::Built: ImageClassifier<D>,
    <MnistResNet as BuildOnDevice<D, f32>>::Built: ImageClassifier<D>,
{
    match args.model {
        NotebookModel::LeNet => run::<LeNetClass, D>(dev, args),
        NotebookModel::LeNetSeq => run::<LeNetSeq, D>(dev, args),
        NotebookModel::LeNet5 => run::<LeNet5, D>(dev, args),
        NotebookModel::Mlp => run::<Mlp, D>(dev, args),
        NotebookModel::ResNet => run::<MnistResNet, D>(dev, args),
    }
}

fn run<Net, D>(dev: D, args: &Args) -> Result<(), Box<dyn std::error::Error>>
where
    D: Device<f32> + static_nn::TypedErrors + Cache + DeviceBuildExt,
    Net: BuildOnDevice<D, f32>,
    Net::Built: ImageClassifier<D>,
{
    dev.enable_cache(); // dfdx's allocation cache: batches reuse memory
    let mut model = dev
        .try_build_module::<Net, f32>()
        .map_err(|e| format!("building the model: {e:?}"))?;
    static_nn::weights::load(&mut model, &args.weights)?;
    let mut clf = Classifier::new(model, dev, OptimizerConfig::sgd(0.0));
    clf.set_observer(common::train_progress(false));

    if let Some(image) = &args.image {
        let pixels = static_nn::pictures::mnistify(image)?;
        let batch = Batch {
            images: pixels.to_vec(),
            labels: vec![0],
            channels: 1,
            rows: 28,
            cols: 28,
        };
        let preds = clf.predict(&batch)?;
        let digit = preds.labels[0];
        println!(
            "{}: digit {digit} (probability {:.4})",
            image.display(),
            preds.probabilities[0][digit]
        );
        return Ok(());
    }

    let mut opts = LocateOptions::from_env(&MNIST, args.data.as_deref());
    opts.observer = Some(Arc::new(common::download_progress()));
    let test = IdxDataset::load_split_with(&MNIST, &opts, Split::Test)?;
    let loader = DataLoader::new(
        Arc::new(test),
        LoaderConfig {
            batch_size: 1000,
            ..Default::default()
        },
    );
    let eval = clf.evaluate(&loader)?;
    if let Some(path) = &args.predictions {
        let mut lines = String::new();
        for batch in loader.epoch(0) {
            for digit in clf.predict(&batch)?.labels {
                lines.push_str(&format!("{digit}\n"));
            }
        }
        std::fs::write(path, lines).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("{eval}");
    println!("{}", eval.accuracy_line("test"));
    Ok(())
}
