//! static-nn's own optimizers: PyTorch's SGD, Adam, AdamW and RMSprop, with
//! gradient clipping by global norm, whose state can be exported and
//! imported by parameter name so that checkpoints resume bit-identically
//! (dfdx 0.13's optimizers keep theirs private).
//!
//! The arithmetic runs on host copies of each parameter and gradient, in
//! f32, element by element in a fixed order, as PyTorch's single-tensor
//! (`foreach=False`) implementations do: it is deterministic and the same on
//! every dfdx device.
use crate::train::TrainError;
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::optim::{OptimizerUpdateError, UnusedTensors};
use dfdx::prelude::{Device, Gradients, HasShape, Shape, Tensor};

mod adam;
mod clip;
mod config;
mod rmsprop;
mod schedule;
mod sgd;
mod state;

pub use config::OptimizerConfig;
pub use schedule::{LrSchedule, Schedule};
pub use state::{OptimizerState, StateBuffer};

/// One trainable tensor of the model: its name, shape, the host copy of its
/// gradient (reused every step) and its state buffers (empty until the first
/// step).
pub(crate) struct Slot {
    name: String,
    shape: Vec<usize>,
    grad: Vec<f32>,
    bufs: Vec<Vec<f32>>,
}

/// An optimizer ([`OptimizerConfig`]) for one model, with optional gradient
/// clipping and a state that [`state`](Self::state) exports and
/// [`load_state`](Self::load_state) imports.
///
/// It is built for a model's layout: the names and sizes of its trainable
/// tensors (those whose `do_gradient_update` is set: BatchNorm's running
/// statistics are left alone), and refuses another. It implements dfdx's
/// [`Optimizer`](dfdx::optim::Optimizer) trait too.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::train::{Optim, OptimizerConfig};
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<Linear<3, 2>, f32>();
/// let mut opt = Optim::new(&model, OptimizerConfig::adamw(1e-3))?.with_clip_grad_norm(Some(1.0))?;
/// let x = dev.sample_normal::<Rank1<3>>();
/// let grads = model.forward(x.traced(model.alloc_grads())).square().sum().backward();
/// let norm = opt.update(&mut model, &grads)?; // the norm before clipping
/// assert!(norm.is_finite());
/// assert_eq!(opt.steps(), 1);
/// let saved = opt.state(); // exp_avg and exp_avg_sq of weight and bias
/// assert_eq!(saved.buffers.len(), 4);
/// let mut resumed = Optim::new(&model, OptimizerConfig::adamw(1e-3))?;
/// resumed.load_state(saved)?;
/// # Ok::<(), static_nn::train::TrainError>(())
/// ```
pub struct Optim {
    cfg: OptimizerConfig,
    clip_grad_norm: Option<f64>,
    steps: u64,
    slots: Vec<Slot>,
    /// A host copy of one parameter, as long as the largest.
    scratch: Vec<f32>,
    /// Every gradient end to end, for a reducer (empty without one).
    flat: Vec<f32>,
    last_grad_norm: Option<f64>,
}

/// What [`Optim::update_reduced`] calls with the flat gradient buffer.
pub type Reducer<'a> = dyn FnMut(&mut Vec<f32>) -> Result<(), TrainError> + 'a;

impl Optim {
    /// The optimizer `cfg` for `model`'s trainable tensors, without
    /// clipping.
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`] from
    /// [`OptimizerConfig::validate`].
    pub fn new<M: TensorCollection<f32, D>, D: Device<f32>>(
        model: &M,
        cfg: OptimizerConfig,
    ) -> Result<Self, TrainError> {
        cfg.validate()?;
        Ok(Self::unchecked(model, cfg))
    }

    /// [`new`](Self::new) without the validation.
    fn unchecked<M: TensorCollection<f32, D>, D: Device<f32>>(
        model: &M,
        cfg: OptimizerConfig,
    ) -> Self {
        let mut layout = Layout { slots: Vec::new() };
        let walked = M::iter_tensors(&mut RecursiveWalker {
            m: (String::new(), model),
            f: &mut layout,
        });
        if let Err(never) = walked {
            match never {}
        }
        let longest = layout.slots.iter().map(|s| s.grad.len()).max();
        Self {
            cfg,
            clip_grad_norm: None,
            steps: 0,
            slots: layout.slots,
            scratch: vec![0.0; longest.unwrap_or(0)],
            flat: Vec::new(),
            last_grad_norm: None,
        }
    }

    /// The same optimizer, clipping the gradients to a total L2 norm of
    /// `max_norm` before each step (`None`: no clipping).
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`] if `max_norm` is not finite and
    /// positive.
    pub fn with_clip_grad_norm(mut self, max_norm: Option<f64>) -> Result<Self, TrainError> {
        self.set_clip_grad_norm(max_norm)?;
        Ok(self)
    }

    /// Sets the clipping of [`with_clip_grad_norm`](Self::with_clip_grad_norm).
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`] if `max_norm` is not finite and
    /// positive; the setting is unchanged then.
    pub fn set_clip_grad_norm(&mut self, max_norm: Option<f64>) -> Result<(), TrainError> {
        if let Some(m) = max_norm {
            if !(m.is_finite() && m > 0.0) {
                return Err(TrainError::InvalidHyperparameter(format!(
                    "clip_grad_norm: max_norm must be finite and > 0, got {m}"
                )));
            }
        }
        self.clip_grad_norm = max_norm;
        Ok(())
    }

    /// The clipping's `max_norm`, if any.
    pub fn clip_grad_norm(&self) -> Option<f64> {
        self.clip_grad_norm
    }

    /// The configuration, with the current learning rate.
    pub fn config(&self) -> OptimizerConfig {
        self.cfg
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.cfg.lr()
    }

    /// Changes the learning rate (for schedules). [`update`](Self::update)
    /// refuses a negative or non-finite one.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.cfg = self.cfg.with_lr(lr);
    }

    /// How many updates were made (PyTorch's `step` in the state).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The total gradient norm before clipping of the last successful
    /// [`update`](Self::update), if any.
    pub fn last_grad_norm(&self) -> Option<f64> {
        self.last_grad_norm
    }

    /// The dotted names of the tensors it updates, in the model's order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// One step on `model` from `grads`: clips the gradients if asked to,
    /// then updates every trainable tensor. Returns the total L2 norm of the
    /// gradients before clipping (computed in f64; without clipping it may
    /// be infinite or NaN, and the step is taken as PyTorch would).
    ///
    /// # Errors
    /// Nothing is changed on error:
    /// - [`TrainError::OptimizerMismatch`]: `model` is not the layout the
    ///   optimizer was built for;
    /// - [`TrainError::NonFiniteGradient`]: with clipping, a gradient holds
    ///   NaN or infinity (PyTorch's `error_if_nonfinite`);
    /// - [`TrainError::InvalidHyperparameter`]: the learning rate was set to
    ///   a negative or non-finite value.
    ///
    /// # Panics
    /// If `grads` lacks the gradient of a trainable tensor: gradients from
    /// `alloc_grads` and a backward pass always have them.
    pub fn update<M: TensorCollection<f32, D>, D: Device<f32>>(
        &mut self,
        model: &mut M,
        grads: &Gradients<f32, D>,
    ) -> Result<f64, TrainError> {
        self.try_update(model, grads, None).map_err(|e| e.0)
    }

    /// [`update`](Self::update) with the gradients reduced across
    /// data-parallel replicas: after every gradient is gathered, `reduce`
    /// gets them all end to end in one flat buffer, in the model's order
    /// ([`param_names`](Self::param_names)), and must leave in it, at the
    /// same length, the gradients to apply (e.g. the mean of all ranks', by
    /// one all-reduce). It may push values behind the gradients and pop them
    /// again. Clipping and the step follow, from the reduced gradients.
    ///
    /// # Errors
    /// Those of [`update`](Self::update), and `reduce`'s own, or
    /// [`TrainError::OptimizerMismatch`] if it changed the buffer's length;
    /// nothing is changed then.
    pub fn update_reduced<M: TensorCollection<f32, D>, D: Device<f32>>(
        &mut self,
        model: &mut M,
        grads: &Gradients<f32, D>,
        reduce: &mut Reducer<'_>,
    ) -> Result<f64, TrainError> {
        self.try_update(model, grads, Some(reduce)).map_err(|e| e.0)
    }

    /// Hands the gathered gradients to `reduce` as one flat buffer and puts
    /// the result back; the new squared norm and first non-finite tensor.
    fn reduce_slots(
        &mut self,
        reduce: &mut Reducer<'_>,
    ) -> Result<(f64, Option<String>), TrainError> {
        let mut flat = std::mem::take(&mut self.flat);
        flat.clear();
        for slot in &self.slots {
            flat.extend_from_slice(&slot.grad);
        }
        let len = flat.len();
        let reduced = reduce(&mut flat);
        let result = match reduced {
            Err(e) => Err(e),
            Ok(()) if flat.len() != len => Err(TrainError::OptimizerMismatch(format!(
                "the gradient reducer left {} values in the flat buffer of {len} gradients",
                flat.len()
            ))),
            Ok(()) => {
                let (mut sum, mut non_finite, mut at) = (0.0, None, 0);
                for slot in &mut self.slots {
                    let n = slot.grad.len();
                    slot.grad.copy_from_slice(&flat[at..at + n]);
                    at += n;
                    let s = clip::sum_squares(&slot.grad);
                    if !s.is_finite() && non_finite.is_none() {
                        non_finite = Some(slot.name.clone());
                    }
                    sum += s;
                }
                Ok((sum, non_finite))
            }
        };
        self.flat = flat;
        result
    }

    /// [`update`](Self::update), with the tensors an error concerns for
    /// dfdx's error type.
    fn try_update<M: TensorCollection<f32, D>, D: Device<f32>>(
        &mut self,
        model: &mut M,
        grads: &Gradients<f32, D>,
        reduce: Option<&mut Reducer<'_>>,
    ) -> Result<f64, Box<(TrainError, UnusedTensors)>> {
        config::check_lr(self.cfg.name(), self.cfg.lr())
            .map_err(|e| Box::new((e, UnusedTensors::default())))?;
        let mut gather = Gather {
            slots: &mut self.slots,
            grads,
            index: 0,
            sum_squares: 0.0,
            non_finite: None,
            mismatch: None,
            offenders: UnusedTensors::default(),
        };
        let walked = M::iter_tensors(&mut RecursiveWalker {
            m: (String::new(), &*model),
            f: &mut gather,
        });
        if let Err(never) = walked {
            match never {}
        }
        if gather.mismatch.is_none() && gather.index != gather.slots.len() {
            gather.mismatch = Some(format!(
                "the model has {} trainable tensors, the optimizer was built for {} (the first missing is {})",
                gather.index,
                gather.slots.len(),
                gather.slots[gather.index].name
            ));
        }
        let (sum_squares, mut non_finite, mismatch, mut offenders) = (
            gather.sum_squares,
            gather.non_finite,
            gather.mismatch,
            gather.offenders,
        );
        if let Some(msg) = mismatch {
            return Err(Box::new((TrainError::OptimizerMismatch(msg), offenders)));
        }
        let mut norm = sum_squares.sqrt();
        if let Some(reduce) = reduce {
            let (s, nf) = self
                .reduce_slots(reduce)
                .map_err(|e| Box::new((e, UnusedTensors::default())))?;
            norm = s.sqrt();
            non_finite = nf;
            offenders = UnusedTensors::default();
        }
        if let Some(max_norm) = self.clip_grad_norm {
            if !norm.is_finite() {
                let param = non_finite.unwrap_or_default();
                return Err(Box::new((
                    TrainError::NonFiniteGradient { param, norm },
                    offenders,
                )));
            }
            if let Some(coef) = clip::clip_coefficient(max_norm, norm) {
                for slot in &mut self.slots {
                    clip::scale(&mut slot.grad, coef);
                }
            }
        }
        self.last_grad_norm = Some(norm);
        let step = self.steps + 1;
        let names = self.cfg.buffer_names();
        for slot in &mut self.slots {
            if slot.bufs.len() != names.len() {
                slot.bufs = names.iter().map(|_| vec![0.0; slot.grad.len()]).collect();
            }
        }
        let mut apply = Apply {
            kernel: Kernel::new(&self.cfg, step),
            slots: &mut self.slots,
            scratch: &mut self.scratch,
            index: 0,
        };
        let walked = M::iter_tensors(&mut RecursiveWalker {
            m: model,
            f: &mut apply,
        });
        if let Err(never) = walked {
            match never {}
        }
        self.steps = step;
        Ok(norm)
    }

    /// The step count and every state buffer, by parameter name.
    pub fn state(&self) -> OptimizerState {
        state::export(
            self.cfg.name(),
            self.steps,
            &self.slots,
            self.cfg.buffer_names(),
        )
    }

    /// Replaces the step count and the buffers with `state`'s, taken from an
    /// optimizer of the same kind and configuration for the same model.
    ///
    /// # Errors
    /// [`TrainError::OptimizerMismatch`], naming the buffer, if `state` is of
    /// another optimizer, or lacks a buffer this model and configuration
    /// need, or has one they do not, or one of another size or shape. The
    /// optimizer is unchanged then.
    pub fn load_state(&mut self, state: OptimizerState) -> Result<(), TrainError> {
        let steps = state.steps;
        let bufs = state::import(state, self.cfg.name(), &self.slots, self.cfg.buffer_names())?;
        for (slot, b) in self.slots.iter_mut().zip(bufs) {
            slot.bufs = b;
        }
        self.steps = steps;
        Ok(())
    }
}

impl std::fmt::Debug for Optim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optim")
            .field("cfg", &self.cfg)
            .field("clip_grad_norm", &self.clip_grad_norm)
            .field("steps", &self.steps)
            .field("params", &self.slots.len())
            .finish()
    }
}

/// dfdx's optimizer interface. dfdx's error type has no room for this
/// crate's: an [`OptimizerMismatch`](TrainError::OptimizerMismatch) or a
/// [`NonFiniteGradient`](TrainError::NonFiniteGradient) is reported as
/// `UnusedParams` with the tensors concerned (none for an invalid learning
/// rate). [`Optim::update`] gives the named error and the norm.
impl<M: TensorCollection<f32, D>, D: Device<f32>> dfdx::optim::Optimizer<M, D, f32> for Optim {
    fn update(
        &mut self,
        module: &mut M,
        gradients: &Gradients<f32, D>,
    ) -> Result<(), OptimizerUpdateError<D::Err>> {
        self.try_update(module, gradients, None)
            .map(|_| ())
            .map_err(|e| OptimizerUpdateError::UnusedParams(e.1))
    }
}

/// Reads the names and sizes of the trainable tensors.
struct Layout {
    slots: Vec<Slot>,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Layout {
    type Viewer = (ViewTensorName, ViewTensorRef);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        (name, t): (String, &Tensor<S, f32, D>),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if opts.do_gradient_update {
            self.slots.push(Slot {
                name,
                shape: t.shape().concrete().into_iter().collect(),
                grad: vec![0.0; t.shape().num_elements()],
                bufs: Vec::new(),
            });
        }
        Ok(None)
    }
}

/// Copies each trainable tensor's gradient into its slot, checking the
/// layout and summing the squares.
struct Gather<'a, D: Device<f32>> {
    slots: &'a mut [Slot],
    grads: &'a Gradients<f32, D>,
    index: usize,
    sum_squares: f64,
    /// The first tensor whose gradient is not finite.
    non_finite: Option<String>,
    mismatch: Option<String>,
    offenders: UnusedTensors,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Gather<'_, D> {
    type Viewer = (ViewTensorName, ViewTensorRef);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        (name, t): (String, &Tensor<S, f32, D>),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if !opts.do_gradient_update || self.mismatch.is_some() {
            return Ok(None);
        }
        let i = self.index;
        self.index += 1;
        let len = t.shape().num_elements();
        match self.slots.get_mut(i) {
            Some(slot) if slot.name == name && slot.grad.len() == len => {
                self.grads.get(t).copy_into(&mut slot.grad);
                let s = clip::sum_squares(&slot.grad);
                if !s.is_finite() && self.non_finite.is_none() {
                    self.non_finite = Some(name);
                    self.offenders.add(t);
                }
                self.sum_squares += s;
            }
            found => {
                self.mismatch = Some(match found {
                    Some(slot) => format!(
                        "trainable tensor {i} of the model is {name} ({len} values), the optimizer was built for {} ({} values)",
                        slot.name,
                        slot.grad.len()
                    ),
                    None => format!(
                        "the model has more trainable tensors than the {} the optimizer was built for, from {name}",
                        self.slots.len()
                    ),
                });
                self.offenders.add(t);
            }
        }
        Ok(None)
    }
}

/// One optimizer's coefficients for one step.
enum Kernel {
    Sgd(sgd::Sgd),
    Adam(adam::Adam),
    RmsProp(rmsprop::RmsProp),
}

impl Kernel {
    /// The coefficients of `cfg`'s step number `step` (1-based).
    fn new(cfg: &OptimizerConfig, step: u64) -> Self {
        match *cfg {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => Self::Sgd(sgd::Sgd::new(
                lr,
                momentum,
                dampening,
                nesterov,
                weight_decay,
                step,
            )),
            OptimizerConfig::Adam {
                lr,
                betas,
                eps,
                weight_decay,
            } => Self::Adam(adam::Adam::new(lr, betas, eps, weight_decay, false, step)),
            OptimizerConfig::AdamW {
                lr,
                betas,
                eps,
                weight_decay,
            } => Self::Adam(adam::Adam::new(lr, betas, eps, weight_decay, true, step)),
            OptimizerConfig::RMSprop {
                lr,
                alpha,
                eps,
                momentum,
                weight_decay,
                centered,
            } => Self::RmsProp(rmsprop::RmsProp::new(
                lr,
                alpha,
                eps,
                momentum,
                weight_decay,
                centered,
            )),
        }
    }

    fn apply(&self, p: &mut [f32], g: &[f32], bufs: &mut [Vec<f32>]) {
        match self {
            Self::Sgd(k) => k.apply(p, g, bufs),
            Self::Adam(k) => k.apply(p, g, bufs),
            Self::RmsProp(k) => k.apply(p, g, bufs),
        }
    }
}

/// Updates each trainable tensor from its slot (the layout is checked).
struct Apply<'a> {
    kernel: Kernel,
    slots: &'a mut [Slot],
    scratch: &'a mut [f32],
    index: usize,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Apply<'_> {
    type Viewer = ViewTensorMut;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        t: &mut Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let slot = &mut self.slots[self.index];
        self.index += 1;
        let p = &mut self.scratch[..slot.grad.len()];
        t.copy_into(p);
        self.kernel.apply(p, &slot.grad, &mut slot.bufs);
        t.copy_from(p);
        Ok(None)
    }
}

/// The optimizer as [`Classifier`](super::Classifier) holds it: an [`Optim`]
/// whose construction cannot fail (an invalid configuration is reported by
/// the first [`update`](Self::update)). Kept for the classifier's call sites
/// until it holds an [`Optim`] itself.
pub(crate) struct AnyOptimizer<M, D> {
    inner: Optim,
    invalid: Option<String>,
    _model: std::marker::PhantomData<fn(&M, &D)>,
}

impl<M: TensorCollection<f32, D>, D: Device<f32>> AnyOptimizer<M, D> {
    /// Builds the optimizer for `model`.
    pub fn new(model: &M, cfg: OptimizerConfig) -> Self {
        let invalid = match cfg.validate() {
            Err(TrainError::InvalidHyperparameter(msg)) => Some(msg),
            Err(other) => Some(other.to_string()),
            Ok(()) => None,
        };
        Self {
            inner: Optim::unchecked(model, cfg),
            invalid,
            _model: std::marker::PhantomData,
        }
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    /// Changes the learning rate (for schedules).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.inner.set_learning_rate(lr);
    }

    /// The optimizer inside.
    pub fn inner(&self) -> &Optim {
        &self.inner
    }

    /// The optimizer inside, to load a state or set clipping.
    pub fn inner_mut(&mut self) -> &mut Optim {
        &mut self.inner
    }

    /// One update of `model` from `grads`.
    pub fn update(&mut self, model: &mut M, grads: &Gradients<f32, D>) -> Result<(), TrainError> {
        if let Some(msg) = &self.invalid {
            return Err(TrainError::InvalidHyperparameter(msg.clone()));
        }
        self.inner.update(model, grads).map(|_| ())
    }

    /// One update of `model` from `grads` reduced by `reduce` (see
    /// [`Optim::update_reduced`]).
    pub fn update_reduced(
        &mut self,
        model: &mut M,
        grads: &Gradients<f32, D>,
        reduce: &mut Reducer<'_>,
    ) -> Result<(), TrainError> {
        if let Some(msg) = &self.invalid {
            return Err(TrainError::InvalidHyperparameter(msg.clone()));
        }
        self.inner.update_reduced(model, grads, reduce).map(|_| ())
    }
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
