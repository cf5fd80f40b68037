//! Pictures of a classifier's predictions.
use super::{Classifier, ImageClassifier};
use crate::data::DataLoader;
use crate::error::TypedErrors;
use crate::pictures::{save_grid_png, Panel};
use dfdx::prelude::Device;
use std::path::Path;

/// How many test images [`save_predictions_png`] shows in order, and how
/// many of the later mistakes it adds.
const FIRST: usize = 16;
const MISTAKES: usize = 8;

/// Draws the notebook's `plot` of predictions as a PNG: the first 16 images
/// of `loader` (in its epoch-0 order) titled `Pred: p, True: t`, then up to
/// 8 later mistakes; mistakes are titled and framed in red. Classes are
/// shown by `class_names` (by number where a name is missing); RGB images
/// are drawn in colour, from the data set's own pixels (so a normalising
/// loader does not change the picture).
///
/// # Errors
/// The classifier's errors, or the picture's (an empty loader, a file that
/// cannot be written).
pub fn save_predictions_png<M, D>(
    clf: &Classifier<M, D>,
    loader: &DataLoader,
    class_names: &[String],
    path: &Path,
) -> Result<(), crate::Error>
where
    D: Device<f32> + TypedErrors,
    M: ImageClassifier<D>,
{
    let data = loader.data();
    let order = loader.order(0);
    let name = |c: usize| class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let mut shown: Vec<(usize, usize, usize)> = Vec::new(); // (sample, predicted, true)
    let (mut seen, mut mistakes) = (0, 0);
    for batch in loader.epoch(0) {
        let preds = clf.predict(&batch)?;
        for (&p, &t) in preds.labels.iter().zip(&batch.labels) {
            let later_mistake = seen >= FIRST && p != t && mistakes < MISTAKES;
            if seen < FIRST || later_mistake {
                mistakes += usize::from(later_mistake);
                shown.push((order[seen], p, t));
            }
            seen += 1;
        }
        if mistakes >= MISTAKES {
            break;
        }
    }
    let pixels: Vec<Vec<f32>> = shown
        .iter()
        .map(|&(i, _, _)| data.image(i).iter().map(|&v| v as f32 / 255.0).collect())
        .collect();
    let panels: Vec<Panel> = shown
        .iter()
        .zip(&pixels)
        .map(|(&(_, p, t), px)| {
            Panel::new(
                px,
                data.rows,
                data.cols,
                format!("Pred: {}, True: {}", name(p), name(t)),
            )
            .marked(p != t)
        })
        .collect();
    let scale = if data.rows.max(data.cols) <= 32 { 4 } else { 2 };
    save_grid_png(path, &panels, 8, scale)?;
    Ok(())
}
