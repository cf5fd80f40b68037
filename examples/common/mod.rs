//! What the examples show while they work: indicatif progress bars and the
//! notebook's per-epoch line, wired to static-nn's observers (the library
//! itself prints nothing). Included by each example with `mod common;`.
#![allow(dead_code)]

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use static_nn::data::{DatasetSpec, DownloadEvent, IdxDataset, LocateOptions};
use static_nn::train::TrainEvent;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Whether this process prints: rank 0 of a data-parallel run, or the only one.
static ROOT: AtomicBool = AtomicBool::new(true);

/// Sets whether this process prints its progress and results.
pub fn set_root(root: bool) {
    ROOT.store(root, Ordering::Relaxed);
}

/// Whether this process prints (see [`set_root`]).
pub fn is_root() -> bool {
    ROOT.load(Ordering::Relaxed)
}

/// `println!` on rank 0 only.
#[allow(unused_macros)]
macro_rules! say {
    ($($t:tt)*) => {
        if crate::common::is_root() {
            println!($($t)*);
        }
    };
}

/// The processes of a run: one, or the ranks of an MPI job (`--distributed`
/// under `mpirun`, with the `distributed` feature).
pub struct Ranks {
    #[cfg(feature = "distributed")]
    universe: Option<mpi::environment::Universe>,
}

impl Ranks {
    /// Starts MPI if `distributed`; an error if this build has no MPI.
    pub fn start(distributed: bool) -> Result<Ranks, String> {
        #[cfg(feature = "distributed")]
        {
            let universe = if distributed {
                let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
                    .ok_or("MPI is initialised already")?;
                Some(universe)
            } else {
                None
            };
            let ranks = Ranks { universe };
            set_root(ranks.rank() == 0);
            Ok(ranks)
        }
        #[cfg(not(feature = "distributed"))]
        {
            if distributed {
                return Err("--distributed needs MPI: build with `--features distributed` (Open MPI's libopenmpi-dev and libclang-dev), run under mpirun".into());
            }
            Ok(Ranks {})
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        #[cfg(feature = "distributed")]
        if let Some(u) = &self.universe {
            use mpi::topology::Communicator;
            return usize::try_from(u.world().rank()).unwrap_or(0);
        }
        0
    }

    /// The number of ranks.
    pub fn world(&self) -> usize {
        #[cfg(feature = "distributed")]
        if let Some(u) = &self.universe {
            use mpi::topology::Communicator;
            return usize::try_from(u.world().size()).unwrap_or(1);
        }
        1
    }

    /// The communicator for `Classifier::distribute`, when distributed.
    pub fn collective(&self) -> Option<Box<dyn static_nn::train::Collective>> {
        #[cfg(feature = "distributed")]
        if let Some(u) = &self.universe {
            return Some(Box::new(static_nn::train::MpiCollective::new(u.world())));
        }
        None
    }

    /// Reports `e` and ends the run: every rank of it (MPI_Abort), so that
    /// none waits forever for this one.
    pub fn fail(&self, e: &dyn std::fmt::Display) -> ! {
        if self.world() > 1 {
            eprintln!("error: {e} (rank {} of {})", self.rank(), self.world());
        } else {
            eprintln!("error: {e}");
        }
        #[cfg(feature = "distributed")]
        if let Some(u) = &self.universe {
            use mpi::topology::Communicator;
            u.world().abort(1);
        }
        std::process::exit(1)
    }
}

/// A bar of `len` steps on stderr (drawn only on a terminal).
fn bar(len: Option<u64>, template: &str, prefix: String) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(prefix);
    pb
}

/// Runs `f` on a worker of a new rayon pool (one thread per core, or
/// `RAYON_NUM_THREADS`). The kernels' parallel loops then start from a
/// worker, without waking and parking the calling thread for each of the
/// hundreds of loops in a training step.
pub fn on_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new().build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
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

/// The end of a training example, shared by `lenet` and `train`: the
/// all-reduce line of a distributed run; on rank 0 the weights
/// (`OUT/<name>.safetensors`), the loss curve and the predictions PNG; the
/// evaluation on `test` with `class_names`; and the last line,
/// `test accuracy: P% (N/M)`.
pub fn finish_run<M, D>(
    clf: &static_nn::train::Classifier<M, D>,
    test: &static_nn::data::DataLoader,
    class_names: &[String],
    out: &Path,
    name: &str,
    loss_title: &str,
) -> Result<(), Box<dyn std::error::Error>>
where
    D: dfdx::prelude::Device<f32> + static_nn::TypedErrors,
    M: static_nn::train::ImageClassifier<D>,
{
    if let Some(c) = clf.communication() {
        say!(
            "communication: {:.3} ms per step in the gradients' all-reduce over {} steps, {} bytes per step and rank, {} ranks",
            c.seconds_per_step() * 1e3,
            c.steps,
            c.bytes_per_step,
            clf.world_size()
        );
    }
    // rank 0 alone writes the files: its replica is every rank's
    let root = clf.is_root();
    let weights = out.join(format!("{name}.safetensors"));
    if root {
        std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        static_nn::weights::save(&clf.model, &weights)?;
        let losses: Vec<f32> = clf.history.iter().map(|s| s.loss).collect();
        static_nn::pictures::save_line_plot(
            &out.join("loss.png"),
            loss_title,
            &[("train loss", &losses)],
        )?;
    }
    let eval = clf.evaluate(test)?;
    if root {
        static_nn::train::save_predictions_png(
            clf,
            test,
            class_names,
            &out.join("predictions.png"),
        )?;
    }
    say!("{}", eval.report(class_names));
    say!(
        "wrote {}, {} and {}",
        weights.display(),
        out.join("predictions.png").display(),
        out.join("loss.png").display()
    );
    say!("{}", eval.accuracy_line("test"));
    Ok(())
}
