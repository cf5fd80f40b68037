//! The optimizer's state, exported and imported by parameter name.
use super::Slot;
use crate::train::TrainError;
use std::collections::HashMap;

/// Everything an [`Optim`](super::Optim) remembers between steps, for
/// checkpoints: the step count and, per trainable parameter, its buffers
/// under PyTorch's names (`momentum_buffer`, `exp_avg`, `exp_avg_sq`,
/// `square_avg`, `grad_avg`).
///
/// Loading it into a fresh optimizer of the same configuration for the same
/// model ([`Optim::load_state`](super::Optim::load_state)) makes the next
/// steps bit-identical to those of the optimizer it was taken from. The
/// learning rate is not part of it: a schedule computes it from the epoch
/// and step.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// The optimizer's name ([`OptimizerConfig::name`](super::OptimizerConfig::name)).
    pub optimizer: String,
    /// How many updates were made.
    pub steps: u64,
    /// The buffers, in the model's parameter order, each parameter's in the
    /// order PyTorch creates them. Empty before the first step (PyTorch
    /// creates them then) and for SGD without momentum.
    pub buffers: Vec<StateBuffer>,
}

/// One state buffer of one parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct StateBuffer {
    /// The parameter's dotted name, as in the weights files (`conv1.weight`).
    pub param: String,
    /// The buffer's name in PyTorch (`exp_avg`).
    pub name: String,
    /// The parameter's shape.
    pub shape: Vec<usize>,
    /// The values, in the parameter's row-major order.
    pub data: Vec<f32>,
}

impl StateBuffer {
    /// `param.name`, e.g. `conv1.weight.exp_avg`: a key for a checkpoint file.
    pub fn key(&self) -> String {
        format!("{}.{}", self.param, self.name)
    }
}

fn mismatch(msg: String) -> TrainError {
    TrainError::OptimizerMismatch(msg)
}

/// The state of `slots` after `steps` steps of an optimizer called `name`
/// with buffers `names`.
pub(super) fn export(name: &str, steps: u64, slots: &[Slot], names: &[&str]) -> OptimizerState {
    let buffers = slots
        .iter()
        .flat_map(|slot| {
            slot.bufs.iter().zip(names).map(|(data, n)| StateBuffer {
                param: slot.name.clone(),
                name: (*n).to_string(),
                shape: slot.shape.clone(),
                data: data.clone(),
            })
        })
        .collect();
    OptimizerState {
        optimizer: name.to_string(),
        steps,
        buffers,
    }
}

/// Checks `state` against the optimizer (`name`, buffer `names`) and its
/// model (`slots`), and returns each slot's buffers; nothing is changed on
/// error.
pub(super) fn import(
    state: OptimizerState,
    name: &str,
    slots: &[Slot],
    names: &[&str],
) -> Result<Vec<Vec<Vec<f32>>>, TrainError> {
    if state.optimizer != name {
        return Err(mismatch(format!(
            "the state is {:?}'s, this optimizer is {name:?}",
            state.optimizer
        )));
    }
    if state.steps == 0 || names.is_empty() {
        if let Some(b) = state.buffers.first() {
            return Err(mismatch(format!(
                "{name} keeps no buffers {}, but the state has {} ({})",
                if state.steps == 0 {
                    "before its first step"
                } else {
                    "in this configuration"
                },
                state.buffers.len(),
                b.key()
            )));
        }
        return Ok(slots.iter().map(|_| Vec::new()).collect());
    }
    let mut by_key: HashMap<(String, String), StateBuffer> =
        HashMap::with_capacity(state.buffers.len());
    for b in state.buffers {
        let key = b.key();
        if by_key
            .insert((b.param.clone(), b.name.clone()), b)
            .is_some()
        {
            return Err(mismatch(format!("the state has {key} twice")));
        }
    }
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        let mut bufs = Vec::with_capacity(names.len());
        for n in names {
            let b = by_key
                .remove(&(slot.name.clone(), (*n).to_string()))
                .ok_or_else(|| {
                    mismatch(format!(
                        "the state has no {}.{n} (a state of another model or configuration?)",
                        slot.name
                    ))
                })?;
            if b.data.len() != slot.grad.len() || b.shape != slot.shape {
                return Err(mismatch(format!(
                    "{} has shape {:?} and {} values in the state, the model's parameter has shape {:?} ({} values)",
                    b.key(),
                    b.shape,
                    b.data.len(),
                    slot.shape,
                    slot.grad.len()
                )));
            }
            bufs.push(b.data);
        }
        out.push(bufs);
    }
    if let Some(key) = by_key.values().map(StateBuffer::key).min() {
        return Err(mismatch(format!(
            "the state has {} buffers this model lacks, e.g. {key} (a state of another model or configuration?)",
            by_key.len()
        )));
    }
    Ok(out)
}
