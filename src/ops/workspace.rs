//! Scratch memory that a layer keeps for its CPU kernels.
//!
//! A training step needs the same scratch buffers every time: the input
//! copied out of its tensor, im2col matrices, gradient staging. Allocating
//! them afresh each step costs more than the arithmetic when the allocator
//! hands large blocks back to the OS (every step then page-faults them in
//! again). So each layer with a kernel owns a [`Workspace`]: buffers leased
//! from it go back to it when the lease ends, also from the backward pass, and
//! the next step takes them again. For inference it also keeps what the
//! layer derives from its parameters while they are unchanged (its
//! [`ParamMemo`]). Nothing here is global: a workspace lives and dies with
//! its layer.
use super::memo::ParamMemo;
use std::any::Any;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};

/// Buffers kept at most; more are freed on return.
const MAX_BUFFERS: usize = 64;

/// One idle buffer: a `Vec<E>` of some dtype, and the tag of its last use.
struct Slot {
    tag: u64,
    len: usize,
    capacity: usize,
    buf: Box<dyn Any + Send>,
}

/// Scratch memory owned by a layer and lent to its kernels (see the module
/// docs). Cloning gives a new, empty workspace: clones of a model never share
/// scratch.
///
/// ```
/// use static_nn::ops::Workspace;
/// let ws = Workspace::default();
/// assert_eq!(ws.idle_buffers(), 0);
/// ```
#[derive(Default)]
pub struct Workspace {
    idle: Arc<Mutex<Vec<Slot>>>,
    memo: Arc<ParamMemo>,
}

impl Clone for Workspace {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for Workspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workspace")
            .field("idle_buffers", &self.idle_buffers())
            .finish()
    }
}

impl Workspace {
    /// Another handle on the same buffers (for a backward pass that
    /// outlives the forward call).
    pub(crate) fn clone_handle(&self) -> Workspace {
        Workspace {
            idle: self.idle.clone(),
            memo: self.memo.clone(),
        }
    }

    /// The layer's inference value derived from its parameters (see
    /// [`ParamMemo`]).
    pub(crate) fn memo(&self) -> &ParamMemo {
        &self.memo
    }

    /// How many buffers are idle, waiting for the next step.
    pub fn idle_buffers(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// A buffer of `len` elements. With `tag`, a buffer last used under the
    /// same tag and length comes back as that use left it (an im2col matrix
    /// whose padding is already zero); otherwise the buffer is all zeros.
    pub(crate) fn lease_zeroed<E>(&self, tag: Option<u64>, len: usize) -> Lease<E>
    where
        E: Copy + Default + Send + 'static,
    {
        let (buf, same) = self.take::<E>(tag, len);
        let mut buf = buf.unwrap_or_default();
        if !same {
            buf.clear();
            buf.resize(len, E::default());
        }
        self.lease(buf, tag)
    }

    /// A buffer of `len` elements whose contents are unspecified (whatever
    /// its last use left, or zeros): for buffers the caller overwrites.
    pub(crate) fn lease_any<E>(&self, len: usize) -> Lease<E>
    where
        E: Copy + Default + Send + 'static,
    {
        let (buf, _) = self.take::<E>(None, len);
        let mut buf = buf.unwrap_or_default();
        buf.resize(len, E::default());
        buf.truncate(len);
        self.lease(buf, None)
    }

    fn lease<E: Send + 'static>(&self, buf: Vec<E>, tag: Option<u64>) -> Lease<E> {
        Lease {
            buf,
            tag: tag.unwrap_or(0),
            home: self.idle.clone(),
        }
    }

    /// Takes the best idle `Vec<E>` for `len`: one with the same tag and
    /// length (then `true`), else the smallest with enough capacity, if it
    /// is not much larger (at most `2·len + 1024`). Otherwise none: a large
    /// buffer lent for a small use, or a small one grown (a copy, fresh
    /// pages), would leave the next use of that size to allocate again.
    fn take<E: Send + 'static>(&self, tag: Option<u64>, len: usize) -> (Option<Vec<E>>, bool) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let of_type = |s: &Slot| s.buf.is::<Vec<E>>();
        let same = tag.and_then(|t| {
            idle.iter()
                .position(|s| s.tag == t && s.len == len && of_type(s))
        });
        let pick = same.or_else(|| {
            idle.iter()
                .enumerate()
                .filter(|(_, s)| of_type(s) && s.capacity >= len && s.capacity <= 2 * len + 1024)
                .min_by_key(|(_, s)| s.capacity)
                .map(|(i, _)| i)
        });
        let Some(i) = pick else {
            return (None, false);
        };
        let slot = idle.swap_remove(i);
        let buf = slot.buf.downcast::<Vec<E>>().ok().map(|b| *b);
        (buf, same.is_some())
    }
}

/// A tag for [`Workspace::lease_zeroed`] from `key` (what the buffer
/// holds, and its geometry): never 0, the tag of untagged buffers, so a
/// tagged lease never takes over an untagged buffer's leftovers.
pub(crate) fn tag_of(key: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() | 1
}

/// A buffer lent by a [`Workspace`]; it goes back when dropped.
pub(crate) struct Lease<E: Send + 'static> {
    buf: Vec<E>,
    tag: u64,
    home: Arc<Mutex<Vec<Slot>>>,
}

impl<E: Send + 'static> Deref for Lease<E> {
    type Target = Vec<E>;
    fn deref(&self) -> &Vec<E> {
        &self.buf
    }
}

impl<E: Send + 'static> DerefMut for Lease<E> {
    fn deref_mut(&mut self) -> &mut Vec<E> {
        &mut self.buf
    }
}

impl<E: Send + 'static> Drop for Lease<E> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() == 0 {
            return;
        }
        let mut idle = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_BUFFERS {
            idle.push(Slot {
                tag: self.tag,
                len: buf.len(),
                capacity: buf.capacity(),
                buf: Box::new(buf),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_are_reused() {
        let ws = Workspace::default();
        let ptr = {
            let mut a = ws.lease_zeroed::<f32>(Some(7), 10_000);
            a[3] = 5.0;
            a.as_ptr()
        };
        assert_eq!(ws.idle_buffers(), 1);
        // same tag and length: the contents are kept
        let a = ws.lease_zeroed::<f32>(Some(7), 10_000);
        assert_eq!((a.as_ptr(), a[3]), (ptr, 5.0));
        drop(a);
        // another tag: the same memory, zeroed
        let b = ws.lease_zeroed::<f32>(Some(8), 5000);
        assert_eq!((b.as_ptr(), b.len()), (ptr, 5000));
        assert!(b.iter().all(|v| *v == 0.0));
        drop(b);
        // a much smaller use does not take it
        let d = ws.lease_any::<f32>(10);
        assert_ne!(d.as_ptr(), ptr);
        drop(d);
        assert_eq!(ws.idle_buffers(), 2);
        let _ = ws.lease_any::<f32>(10);
        // another dtype never gets it
        let c = ws.lease_any::<f64>(10);
        assert_eq!(c.len(), 10);
        assert_eq!(ws.idle_buffers(), 2);
        drop(c);
        assert_eq!(ws.idle_buffers(), 3);
        // clones start empty
        assert_eq!(ws.clone().idle_buffers(), 0);
    }
}
