//! d4c developer tasks.
fn main() {}
