//! What the examples show while they work: indicatif progress bars and the
//! notebook's per-epoch line, wired to static-nn's observers (the library
//! itself prints nothing). Included by each example with `mod common;`.
#![allow(dead_code)]

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use static_nn::data::{DatasetSpec, DownloadEvent, IdxDataset, LocateOptions};
use static_nn::train::TrainEvent;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A bar of `len` steps on stderr (drawn only on a terminal).
fn bar(len: Option<u64>, template: &str, prefix: String) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(prefix);
    pb
}

/// Training progress: a bar per epoch and per evaluation (unless `quiet`),
/// and after each epoch the notebook's line
/// `Epoch: e/n, Loss: x (s samples/s, t s, lr r)` on stdout.
pub fn train_progress(quiet: bool) -> impl Fn(TrainEvent) + Send + Sync {
    const TEMPLATE: &str = "{prefix:>9} [{bar:30}] {pos}/{len} {msg} ({eta})";
    let current: Mutex<Option<ProgressBar>> = Mutex::new(None);
    move |event| {
        let Ok(mut current) = current.lock() else {
            return;
        };
        match event {
            TrainEvent::EpochStarted { epoch, batches, .. } if !quiet => {
                *current = Some(bar(
                    Some(batches as u64),
                    TEMPLATE,
                    format!("epoch {epoch}"),
                ));
            }
            TrainEvent::BatchFinished {
                batch,
                mean_loss,
                samples,
                seconds,
                ..
            } => {
                if let Some(pb) = current.as_ref() {
                    pb.set_position(batch as u64);
                    if batch % 10 == 1 {
                        let rate = samples as f64 / seconds.max(1e-9);
                        pb.set_message(format!("loss {mean_loss:.4}, {rate:.0} samples/s"));
                    }
                }
            }
            TrainEvent::EpochFinished { stats, epochs, lr } => {
                if let Some(pb) = current.take() {
                    pb.finish_and_clear();
                }
                println!(
                    "Epoch: {}/{epochs}, Loss: {:.4} ({:.0} samples/s, {:.1} s, lr {lr:.2e})",
                    stats.epoch,
                    stats.loss,
                    stats.samples_per_sec(),
                    stats.seconds,
                );
            }
            TrainEvent::EvaluationStarted { batches } if !quiet => {
                *current = Some(bar(Some(batches as u64), TEMPLATE, "evaluate".into()));
            }
            TrainEvent::EvaluationBatch { batch, .. } => {
                if let Some(pb) = current.as_ref() {
                    pb.set_position(batch as u64);
                }
            }
            TrainEvent::EvaluationFinished { .. } => {
                if let Some(pb) = current.take() {
                    pb.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}

/// Download progress: a line per file and per failed mirror on stderr, and a
/// bar while the bytes arrive.
pub fn download_progress() -> impl Fn(DownloadEvent) + Send + Sync {
    let current: Mutex<Option<ProgressBar>> = Mutex::new(None);
    move |event| {
        let Ok(mut current) = current.lock() else {
            return;
        };
        match event {
            DownloadEvent::Started { url } => eprintln!("static-nn: downloading {url}"),
            DownloadEvent::Receiving { url, total } => {
                let template = if total.is_some() {
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                } else {
                    "{prefix} {spinner} {bytes} {bytes_per_sec}"
                };
                let name = url.rsplit('/').next().unwrap_or(url).to_string();
                *current = Some(bar(total, template, name));
            }
            DownloadEvent::Progress { bytes, .. } => {
                if let Some(pb) = current.as_ref() {
                    pb.set_position(bytes);
                }
            }
            DownloadEvent::Finished { .. } => {
                if let Some(pb) = current.take() {
                    pb.finish_and_clear();
                }
            }
            DownloadEvent::Failed { why, .. } => {
                if let Some(pb) = current.take() {
                    pb.abandon();
                }
                eprintln!("static-nn: {why}");
            }
            _ => {}
        }
    }
}

/// Loads an MNIST-format data set as the library does (`dir`, `$MNIST_DIR`,
/// the cache, a download), showing download progress.
pub fn load_idx(spec: &DatasetSpec, dir: Option<&Path>) -> static_nn::Result<IdxDataset> {
    let mut opts = LocateOptions::from_env(spec, dir);
    opts.observer = Some(Arc::new(download_progress()));
    Ok(IdxDataset::load_with(spec, &opts)?)
}
