//! The `Classifier` driver: learning, determinism, divergence, real MNIST.
use static_nn::data::{DataLoader, LabelledImages, LoaderConfig};
use static_nn::prelude::*;
use static_nn::train::{Classifier, OptimizerConfig, TrainError};
use std::sync::Arc;

use crate::common::mnist;

/// 28×28 images where class `c` is a bright 6×6 square at a position that
/// depends on `c`, plus deterministic noise.
fn synthetic(n: usize) -> LabelledImages {
    let mut pixels = vec![0u8; n * 784];
    let mut labels = vec![0u8; n];
    let mut state = 12345u32;
    for i in 0..n {
        let c = i % 10;
        labels[i] = c as u8;
        let (y0, x0) = (2 + (c / 5) * 12, 1 + (c % 5) * 5);
        for (j, p) in pixels[i * 784..(i + 1) * 784].iter_mut().enumerate() {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let (y, x) = (j / 28, j % 28);
            let inside = (y0..y0 + 6).contains(&y) && (x0..x0 + 6).contains(&x);
            *p = if inside { 200 } else { 0 } + (state >> 28) as u8;
        }
    }
    LabelledImages::new(28, 28, pixels, labels).expect("valid synthetic set")
}

fn loader(data: LabelledImages, batch: usize, seed: Option<u64>) -> DataLoader {
    DataLoader::new(
        Arc::new(data),
        LoaderConfig {
            batch_size: batch,
            shuffle: seed,
            ..Default::default()
        },
    )
}

fn quiet<M: TensorCollection<f32, Cpu>>(
    model: M,
    dev: Cpu,
    opt: OptimizerConfig,
) -> Classifier<M, Cpu> {
    Classifier::new(model, dev, opt)
}

/// The observer hears every epoch and batch of `fit` and every batch of
/// `evaluate`, in order, with the figures `fit` returns; an empty loader is
/// an error for `evaluate` too.
#[test]
fn the_observer_hears_epochs_batches_and_evaluation() {
    use static_nn::train::TrainEvent;
    use std::sync::Mutex;
    let dev = Cpu::seed_from_u64(1);
    let model = dev.build_module::<LeNetClass, f32>();
    let mut clf = quiet(model, dev, OptimizerConfig::adam(1e-3));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = log.clone();
    clf.set_observer(move |e: TrainEvent| {
        let line = match e {
            TrainEvent::EpochStarted { epoch, batches, .. } => {
                format!("epoch {epoch} of {batches}")
            }
            TrainEvent::BatchFinished {
                epoch,
                batch,
                samples,
                ..
            } => format!("{epoch}.{batch} {samples}"),
            TrainEvent::EpochFinished { stats, epochs, .. } => {
                format!("done {}/{epochs} {:.6}", stats.epoch, stats.loss)
            }
            TrainEvent::EvaluationStarted { batches } => format!("eval {batches}"),
            TrainEvent::EvaluationBatch { batch, .. } => format!("eval.{batch}"),
            TrainEvent::EvaluationFinished { evaluation } => {
                format!("eval done {}", evaluation.total())
            }
            _ => "other".to_string(),
        };
        seen.lock().unwrap().push(line);
    });
    let history = clf
        .fit(&loader(synthetic(40), 16, Some(2)), 2)
        .unwrap()
        .to_vec();
    clf.evaluate(&loader(synthetic(30), 20, None)).unwrap();
    let mut want = Vec::new();
    for (e, stats) in history.iter().enumerate() {
        want.push(format!("epoch {} of 3", e + 1));
        want.extend(
            ["16", "32", "40"]
                .iter()
                .enumerate()
                .map(|(b, s)| format!("{}.{} {s}", e + 1, b + 1)),
        );
        want.push(format!("done {}/2 {:.6}", e + 1, stats.loss));
    }
    want.extend(["eval 2", "eval.1", "eval.2", "eval done 30"].map(String::from));
    assert_eq!(*log.lock().unwrap(), want);

    let empty = loader(synthetic(0), 8, None);
    assert!(matches!(clf.evaluate(&empty), Err(TrainError::EmptyLoader)));
    clf.clear_observer();
    clf.fit(&loader(synthetic(16), 16, None), 1).unwrap();
    assert_eq!(
        log.lock().unwrap().len(),
        want.len(),
        "a cleared observer still heard"
    );
}

#[test]
fn loss_falls_and_accuracy_beats_chance_on_a_synthetic_set() {
    let dev = Cpu::seed_from_u64(1);
    let model = dev.build_module::<LeNetClass, f32>();
    let mut clf = quiet(model, dev, OptimizerConfig::adam(2e-3));
    let train = loader(synthetic(400), 32, Some(3));
    let history = clf.fit(&train, 4).unwrap().to_vec();
    assert!(
        history.last().unwrap().loss < history[0].loss * 0.5,
        "{history:?}"
    );
    let eval = clf.evaluate(&loader(synthetic(200), 50, None)).unwrap();
    assert_eq!(eval.total(), 200);
    assert!(eval.accuracy() > 60.0, "accuracy {}", eval.accuracy());
    let batch = loader(synthetic(10), 10, None).epoch(0).next().unwrap();
    let preds = clf.predict(&batch).unwrap();
    assert_eq!(preds.labels.len(), 10);
    for p in &preds.probabilities {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}

#[test]
fn same_seed_same_loss_curve() {
    let run = |seed: u64| {
        let dev = Cpu::seed_from_u64(seed);
        let model = dev.build_module::<LeNetClass, f32>();
        let mut clf = quiet(model, dev, OptimizerConfig::sgd(0.05));
        let losses: Vec<u32> = clf
            .fit(&loader(synthetic(256), 32, Some(seed)), 2)
            .unwrap()
            .iter()
            .map(|s| s.loss.to_bits())
            .collect();
        (losses, clf.model.fc2.weight.as_vec())
    };
    let (a, wa) = run(7);
    let (b, wb) = run(7);
    assert_eq!(a, b);
    assert_eq!(wa, wb);
    let (c, _) = run(8);
    assert_ne!(a, c);
}

#[test]
fn divergence_stops_with_epoch_and_batch() {
    let dev = Cpu::seed_from_u64(2);
    let model = dev.build_module::<Mlp, f32>();
    let mut clf = quiet(model, dev, OptimizerConfig::sgd(1e12));
    let err = clf.fit(&loader(synthetic(256), 16, None), 3).unwrap_err();
    match err {
        TrainError::NonFiniteLoss { epoch, batch, .. } => {
            assert!(epoch >= 1 && batch >= 1);
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("epoch {epoch}")) && msg.contains(&format!("batch {batch}")),
                "{msg}"
            );
        }
        other => panic!("expected NonFiniteLoss, got {other:?}"),
    }
}

#[test]
fn empty_loader_is_an_error() {
    let dev = Cpu::seed_from_u64(2);
    let model = dev.build_module::<Mlp, f32>();
    let mut clf = quiet(model, dev, OptimizerConfig::sgd(0.1));
    let empty = LabelledImages::new(28, 28, vec![], vec![]).unwrap();
    assert!(matches!(
        clf.fit(&loader(empty, 8, None), 1),
        Err(TrainError::EmptyLoader)
    ));
}

#[test]
fn one_short_epoch_on_real_mnist_beats_chance() {
    let data = mnist();
    let dev = Cpu::seed_from_u64(0);
    let model = dev.build_module::<LeNetClass, f32>();
    let mut clf = quiet(model, dev, OptimizerConfig::adam(1e-3));
    clf.fit(&loader(data.train.subset(0..8000), 64, Some(0)), 1)
        .unwrap();
    let eval = clf
        .evaluate(&loader(data.test.subset(0..2000), 500, None))
        .unwrap();
    assert!(eval.accuracy() > 85.0, "accuracy {}", eval.accuracy());
}

/// `train` with a validation set: accuracy after every epoch, the best one
/// kept, and early stopping once it has not improved for `patience` epochs
/// (a learning rate of 0 leaves it where it is); early stopping without a
/// validation set is a named error.
#[test]
fn train_validates_every_epoch_and_stops_early() {
    use static_nn::train::{TrainEvent, TrainOptions};
    use std::sync::Mutex;
    let dev = Cpu::seed_from_u64(2);
    let model = dev.build_module::<Mlp, f32>();
    let mut clf = quiet(model, dev, OptimizerConfig::sgd(0.0));
    let validated: Arc<Mutex<Vec<(usize, f64)>>> = Arc::default();
    let seen = validated.clone();
    clf.set_observer(move |e: TrainEvent| {
        if let TrainEvent::Validated {
            epoch, accuracy, ..
        } = e
        {
            seen.lock().unwrap().push((epoch, accuracy));
        }
    });
    let opts = TrainOptions {
        epochs: 6,
        early_stop: Some(2),
        ..Default::default()
    };
    let train = loader(synthetic(64), 16, Some(1));
    let val = loader(synthetic(30), 10, None);
    let report = clf.train(&train, Some(&val), &opts).unwrap();
    assert!(report.stopped_early, "{report:?}");
    assert_eq!(
        report.epochs, 3,
        "best at epoch 1, two epochs without a gain"
    );
    let (best_epoch, best) = report.best.unwrap();
    assert_eq!(best_epoch, 1);
    let v = validated.lock().unwrap().clone();
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|&(_, a)| a == best), "{v:?}");
    assert_eq!(clf.history.len(), 3);

    let err = clf.train(&train, None, &opts).unwrap_err();
    assert!(
        matches!(err, TrainError::InvalidHyperparameter(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("validation"), "{err}");
}

/// A learning run improves its validation accuracy and the report keeps its
/// best epoch; a second `train` with more epochs carries on from the first.
#[test]
fn train_carries_on_to_more_epochs() {
    use static_nn::train::TrainOptions;
    let dev = Cpu::seed_from_u64(3);
    let model = dev.build_module::<LeNetClass, f32>();
    let mut clf = quiet(model, dev, OptimizerConfig::adam(2e-3));
    clf.set_seed(Some(4));
    let train = loader(synthetic(200), 20, Some(4));
    let val = loader(synthetic(50), 25, None);
    let first = clf
        .train(
            &train,
            Some(&val),
            &TrainOptions {
                epochs: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((first.epochs, first.resumed_from), (2, 0));
    let more = clf
        .train(
            &train,
            Some(&val),
            &TrainOptions {
                epochs: 4,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((more.epochs, more.resumed_from), (4, 2));
    assert_eq!(clf.history.len(), 4);
    assert!(more.best.unwrap().1 > 50.0, "{more:?}");
}
