//! shapes (in progress)
