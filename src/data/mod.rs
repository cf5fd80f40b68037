//! data (in progress)
