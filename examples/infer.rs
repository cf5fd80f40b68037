//! Evaluates saved weights on the MNIST test set, or classifies one picture.
//!
//! ```text
//! cargo run --release --example infer -- --model lenet --weights out/lenet.safetensors
//! cargo run --release --example infer -- --model lenet --weights out/lenet.safetensors --image digit.png
//! ```
//!
//! The weights may come from the `lenet` example or from PyTorch
//! (`safetensors.torch.save_file(model.state_dict(), path)` of the notebook's
//! models). Evaluation prints `test accuracy: 99.14% (9914/10000)` as its last
//! line. With `--image`, the picture (any size, any colour) is converted to a
//! 28×28 grey digit the way MNIST was made, and the digit and its probability
//! are printed. A bad weights file exits non-zero with the loader's error.
mod common;

use clap::Parser;
use static_nn::data::{Batch, DataLoader, IdxDataset, LoaderConfig, LocateOptions, Split, MNIST};
use static_nn::models::NotebookModel;
use static_nn::prelude::*;
use static_nn::train::{Classifier, ImageClassifier, OptimizerConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// Evaluate or apply saved weights.
#[derive(Parser, Debug)]
#[command(about, long_about = None)]
struct Args {
    /// Which network the weights belong to: lenet, lenet-seq, lenet5 or mlp.
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
}

fn main() {
    let args = Args::parse();
    let result = match args.model {
        NotebookModel::LeNet => run::<LeNetClass>(&args),
        NotebookModel::LeNetSeq => run::<LeNetSeq>(&args),
        NotebookModel::LeNet5 => run::<LeNet5>(&args),
        NotebookModel::Mlp => run::<Mlp>(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run<Net>(args: &Args) -> Result<(), Box<dyn std::error::Error>>
where
    Net: BuildOnDevice<Cpu, f32>,
    Net::Built: ImageClassifier<28, 28, Cpu>,
{
    let dev = Cpu::default();
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
            rows: 28,
            cols: 28,
        };
        let preds = clf.predict::<28, 28>(&batch)?;
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
    let eval = clf.evaluate::<28, 28>(&loader)?;
    println!("{eval}");
    println!("{}", eval.accuracy_line("test"));
    Ok(())
}
