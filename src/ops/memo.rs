//! A value derived from a layer's parameters (a copy of its weights, or
//! their packing for a kernel), kept for the next inference call while the
//! parameters are unchanged.
//!
//! dfdx 0.13 lends no view of a tensor's storage, so a CPU kernel reads a
//! copy, and at batch 1 copying LeNet's weights costs more than using them.
//! A [`ParamMemo`] keeps what was derived, and a clone of each parameter
//! tensor ([`ParamView`]). A clone shares the tensor's buffer, and every dfdx
//! call that writes into a CPU tensor (an optimizer's update, `copy_from`,
//! `IndexMut`, loading weights) first makes its buffer unique
//! (`Arc::make_mut`): while the memo holds its clone, such a write moves the
//! layer's tensor to a new buffer. So the memo is valid while each parameter
//! views the same buffer in the same way: the same shape, the same address of
//! its first element and of the next one along each axis (the same strides).
//!
//! Only inference (no tape) uses memos. In training the parameters change at
//! every step, and a clone held across an optimizer's update would make the
//! update copy them.
use dfdx::prelude::*;
use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// Where a tensor's view of its buffer lies, and a clone that keeps that
/// buffer alive (so that no other tensor can take its place).
pub(crate) struct ParamView {
    dims: Vec<usize>,
    addrs: Vec<usize>,
    _keep: Box<dyn Any + Send + Sync>,
}

impl ParamView {
    /// The view of `t`; `None` when it has no elements (nothing to address).
    pub(crate) fn of<S: Shape, E: Unit>(t: &Tensor<S, E, Cpu>) -> Option<Self> {
        let dims: Vec<usize> = t.shape().concrete().into();
        if dims.contains(&0) {
            return None;
        }
        let first = S::Concrete::default();
        let addr = |i: S::Concrete| std::ptr::from_ref(&t[i]) as usize;
        let mut addrs = vec![addr(first)];
        for (axis, &d) in dims.iter().enumerate() {
            if d > 1 {
                let mut i = first;
                i[axis] = 1;
                addrs.push(addr(i));
            }
        }
        Some(Self {
            dims,
            addrs,
            _keep: Box::new(t.clone()),
        })
    }
}

impl PartialEq for ParamView {
    fn eq(&self, other: &Self) -> bool {
        self.dims == other.dims && self.addrs == other.addrs
    }
}

/// The views of the parameters a value was derived from, and the value.
type Entry = (Vec<ParamView>, Arc<dyn Any + Send + Sync>);

/// One value derived from a layer's parameters (see the module docs).
#[derive(Default)]
pub(crate) struct ParamMemo {
    entry: Mutex<Option<Entry>>,
}

impl fmt::Debug for ParamMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.lock().is_some();
        f.debug_struct("ParamMemo").field("held", &held).finish()
    }
}

impl ParamMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Entry>> {
        self.entry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value kept for `params` if it is a `V` that `fits`; otherwise
    /// `make`'s, which is kept instead. Without a view of every parameter
    /// (`None`: an empty tensor), `make`'s value is returned and not kept.
    pub(crate) fn get_or_make<V, Er>(
        &self,
        params: Vec<Option<ParamView>>,
        fits: impl Fn(&V) -> bool,
        make: impl FnOnce() -> Result<V, Er>,
    ) -> Result<Arc<V>, Er>
    where
        V: Any + Send + Sync,
    {
        let Some(params) = params.into_iter().collect::<Option<Vec<_>>>() else {
            return make().map(Arc::new);
        };
        if let Some((views, value)) = self.lock().as_ref() {
            if *views == params {
                if let Ok(v) = value.clone().downcast::<V>() {
                    if fits(&v) {
                        return Ok(v);
                    }
                }
            }
        }
        let v = Arc::new(make()?);
        let old = self.lock().replace((params, v.clone()));
        drop(old); // its clones go, outside the lock
        Ok(v)
    }

    /// Forgets the kept value and its parameters' clones.
    #[cfg(test)]
    pub(crate) fn clear(&self) {
        let old = self.lock().take();
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// Counts calls of `make` through the memo: the copy of `w`'s values.
    fn copy_of(memo: &ParamMemo, w: &Tensor<Rank2<2, 3>, f32, Cpu>, made: &mut usize) -> Vec<f32> {
        let v = memo
            .get_or_make(
                vec![ParamView::of(w)],
                |_: &Vec<f32>| true,
                || {
                    *made += 1;
                    Ok::<_, Infallible>(w.as_vec())
                },
            )
            .unwrap_or_else(|e| match e {});
        v.to_vec()
    }

    /// The memo is reused while the tensor is unchanged, and remade after
    /// each way dfdx writes into a tensor or replaces it.
    #[test]
    fn every_write_and_every_new_view_makes_it_again() {
        let dev = Cpu::seed_from_u64(1);
        let memo = ParamMemo::default();
        let mut w: Tensor<Rank2<2, 3>, f32, _> = dev.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        let mut made = 0;
        assert_eq!(copy_of(&memo, &w, &mut made), w.as_vec());
        assert_eq!(copy_of(&memo, &w, &mut made), w.as_vec());
        assert_eq!(made, 1, "unchanged: kept");
        // a clone of the layer (sharing the buffer) is the same parameter
        assert_eq!(copy_of(&memo, &w.clone(), &mut made), w.as_vec());
        assert_eq!(made, 1);

        w[[0, 1]] = 9.0;
        assert_eq!(copy_of(&memo, &w, &mut made), w.as_vec());
        w.copy_from(&[0.5; 6]);
        assert_eq!(copy_of(&memo, &w, &mut made), w.as_vec());
        // an optimizer's update
        let grads = (w.leaky_trace() * 2.0).sum().backward();
        let mut sgd = dfdx::optim::Sgd::new(&w, Default::default());
        use dfdx::optim::Optimizer;
        sgd.update(&mut w, &grads).expect("update");
        assert_eq!(copy_of(&memo, &w, &mut made), w.as_vec());
        // another tensor; a transposed view of a square buffer
        let other: Tensor<Rank2<2, 3>, f32, _> = dev.sample_normal();
        assert_eq!(copy_of(&memo, &other, &mut made), other.as_vec());
        assert_eq!(made, 5);

        let sq: Tensor<Rank2<3, 3>, f32, _> = dev.sample_normal();
        let t = sq.clone().permute::<Rank2<3, 3>, _>();
        assert!(ParamView::of(&sq) != ParamView::of(&t));
        assert!(ParamView::of(&sq) == ParamView::of(&sq.clone()));
        memo.clear();
        assert_eq!(copy_of(&memo, &w, &mut made), w.as_vec());
        assert_eq!(made, 6);
    }

    /// An empty tensor has no view: its value is made every time.
    #[test]
    fn empty_tensors_are_not_kept() {
        let dev = Cpu::default();
        let e: Tensor<(usize, Const<3>), f32, _> = dev.zeros_like(&(0, Const));
        assert!(ParamView::of(&e).is_none());
        let memo = ParamMemo::default();
        for _ in 0..2 {
            let v = memo.get_or_make(vec![ParamView::of(&e)], |_: &u8| true, || Ok::<_, ()>(1u8));
            assert_eq!(*v.expect("made"), 1);
        }
        assert!(memo.lock().is_none());
    }
}
