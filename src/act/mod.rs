//! act (in progress)
