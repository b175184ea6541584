//! d4c command-line entry point.
fn main() {}
