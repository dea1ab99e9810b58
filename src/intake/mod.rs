//! intake (in progress)
