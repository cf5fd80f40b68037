//! vision (in progress)
