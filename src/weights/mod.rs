//! Weights (placeholder until the weights module lands).
use dfdx::nn::{SaveToSafetensors, TensorCollection};
use dfdx::prelude::Device;
use std::path::Path;

/// Saves `model` as safetensors.
pub fn save<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    model.save_safetensors(path)?;
    Ok(())
}

/// Loads `model` from safetensors.
pub fn load<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &mut M,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use dfdx::nn::LoadFromSafetensors;
    model.load_safetensors(path).map_err(|e| format!("{e:?}"))?;
    Ok(())
}
