//! vis (in progress)
