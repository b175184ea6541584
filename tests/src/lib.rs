//! Shared helpers for the d4c integration tests (see tests/README.md).

pub mod conformance;
