//! d4c policy library (work in progress).
