//! Data-parallel training: every rank (process) holds a replica of the
//! model, trains on its own slice of every global batch, and the replicas
//! average their gradients before each step, so that they take the same
//! step and stay bit-identical.
//!
//! The library never creates processes nor initialises MPI: the program does
//! (with the `distributed` feature, `MpiCollective` wraps one of rsmpi's
//! communicators) and hands the [`Collective`] to
//! [`Classifier::distribute`](super::Classifier::distribute), which
//!
//! - broadcasts rank 0's parameters and buffers, so every replica starts
//!   identical;
//! - cuts every training batch ([`DataLoader::sharded`](crate::data::DataLoader::sharded)):
//!   one seeded permutation per epoch, the same on every rank, each global
//!   batch of `batch_size` split into contiguous per-rank slices;
//! - after each backward pass sums, in one all-reduce over one flat buffer,
//!   every rank's gradients weighted by its sample count together with the
//!   loss and the counts, and divides by the global count: the gradient of
//!   the global batch's mean loss, even for an uneven split;
//! - compares a hash of the parameters of all ranks every
//!   [`check_every`](DataParallel::check_every) steps and at the end of every
//!   epoch, and stops with [`TrainError::ReplicasDiverged`] if they differ;
//! - shards evaluation and adds the confusion matrices of all ranks.
//!
//! BatchNorm keeps per-rank running statistics, as PyTorch's
//! `DistributedDataParallel` does by default (no `SyncBatchNorm`): each
//! rank normalises its slice by that slice's statistics in training, and its
//! running averages are its own. Checkpoints hold rank 0's; a resumed run
//! gives every rank rank 0's statistics.
use super::TrainError;

/// The collective operations data-parallel training needs, over one group of
/// ranks (a communicator). Every rank must make the same calls in the same
/// order with buffers of the same length; the calls return on every rank
/// with the same result.
pub trait Collective: Send {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn world_size(&self) -> usize;

    /// Replaces `values` by their element-wise sums over all ranks.
    ///
    /// # Errors
    /// [`TrainError::Distributed`] if the communication fails.
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<(), TrainError>;

    /// Replaces `values` by their element-wise sums over all ranks.
    ///
    /// # Errors
    /// [`TrainError::Distributed`] if the communication fails.
    fn all_reduce_sum_u64(&self, values: &mut [u64]) -> Result<(), TrainError>;

    /// Replaces `values` on every rank by rank 0's.
    ///
    /// # Errors
    /// [`TrainError::Distributed`] if the communication fails.
    fn broadcast_f32(&self, values: &mut [f32]) -> Result<(), TrainError>;

    /// Every rank's `value`, in rank order.
    ///
    /// # Errors
    /// [`TrainError::Distributed`] if the communication fails.
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>, TrainError>;
}

/// Communication figures of a data-parallel run
/// ([`Classifier::communication`](super::Classifier::communication)).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommStats {
    /// Optimizer steps taken with an all-reduce.
    pub steps: u64,
    /// Wall time spent in the gradients' all-reduce, in seconds (waiting
    /// for the slowest rank included).
    pub seconds: f64,
    /// Bytes each rank sends into one step's all-reduce: the gradients, the
    /// loss and the sample count, as f32.
    pub bytes_per_step: usize,
}

impl CommStats {
    /// Mean seconds per step in the all-reduce (0 before the first step).
    pub fn seconds_per_step(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.seconds / self.steps as f64
        }
    }
}

/// A classifier's data-parallel setting: its communicator and the
/// divergence check's period.
pub struct DataParallel {
    pub(super) comm: Box<dyn Collective>,
    /// Compare the replicas' parameter hashes every this many steps (and at
    /// the end of every epoch); 0 compares at the ends of epochs only.
    pub check_every: u64,
    pub(super) stats: CommStats,
}

impl DataParallel {
    /// The default period of the divergence check, in steps.
    pub const DEFAULT_CHECK_EVERY: u64 = 50;

    pub(super) fn new(comm: Box<dyn Collective>) -> Self {
        Self {
            comm,
            check_every: Self::DEFAULT_CHECK_EVERY,
            stats: CommStats::default(),
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.rank())
            .field("world_size", &self.world_size())
            .field("check_every", &self.check_every)
            .field("stats", &self.stats)
            .finish()
    }
}

/// FNV-1a over the bits of `values`, continuing from `hash`.
pub(super) fn fnv1a(mut hash: u64, values: &[f32]) -> u64 {
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// FNV-1a's offset basis.
pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

#[cfg(feature = "distributed")]
pub use self::mpi_impl::MpiCollective;

#[cfg(feature = "distributed")]
mod mpi_impl {
    use super::{Collective, TrainError};
    use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
    use mpi::topology::Communicator;

    /// [`Collective`] over an MPI communicator (rsmpi 0.8, the system's
    /// Open MPI), e.g. `universe.world()`. MPI's default error handler
    /// aborts the job on a communication failure, so these calls only
    /// return `Ok`; a rank that dies makes `mpirun` end the others.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use static_nn::train::MpiCollective;
    /// let universe = mpi::initialize_with_threading(mpi::Threading::Serialized)
    ///     .ok_or("MPI is initialised already")?.0;
    /// let comm = MpiCollective::new(universe.world());
    /// // clf.distribute(Box::new(comm))?;
    /// # let _ = comm; Ok(()) }
    /// ```
    pub struct MpiCollective<C: Communicator> {
        comm: C,
    }

    impl<C: Communicator> MpiCollective<C> {
        /// Wraps `comm`. MPI must be initialised with at least
        /// `Threading::Serialized` if the classifier that holds it moves to
        /// another thread than the one that initialised MPI.
        pub fn new(comm: C) -> Self {
            Self { comm }
        }

        /// The communicator.
        pub fn communicator(&self) -> &C {
            &self.comm
        }

        /// Ends every rank of the communicator with `code` (`MPI_Abort`): a
        /// rank that fails calls it, so that no other rank waits forever in
        /// a collective.
        pub fn abort(&self, code: i32) -> ! {
            self.comm.abort(code)
        }
    }

    // SAFETY: a communicator is a handle; this wrapper is not `Sync`, so its
    // calls never run concurrently, and `new` asks for MPI initialised with
    // `Threading::Serialized` (or more) whenever it may move threads.
    unsafe impl<C: Communicator> Send for MpiCollective<C> {}

    impl<C: Communicator> Collective for MpiCollective<C> {
        fn rank(&self) -> usize {
            usize::try_from(self.comm.rank()).unwrap_or(0)
        }

        fn world_size(&self) -> usize {
            usize::try_from(self.comm.size()).unwrap_or(1)
        }

        fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<(), TrainError> {
            let send = values.to_vec();
            self.comm
                .all_reduce_into(&send[..], values, SystemOperation::sum());
            Ok(())
        }

        fn all_reduce_sum_u64(&self, values: &mut [u64]) -> Result<(), TrainError> {
            let send = values.to_vec();
            self.comm
                .all_reduce_into(&send[..], values, SystemOperation::sum());
            Ok(())
        }

        fn broadcast_f32(&self, values: &mut [f32]) -> Result<(), TrainError> {
            self.comm.process_at_rank(0).broadcast_into(values);
            Ok(())
        }

        fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>, TrainError> {
            let mut all = vec![0u64; self.world_size()];
            self.comm.all_gather_into(&value, &mut all[..]);
            Ok(all)
        }
    }
}
