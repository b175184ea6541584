//! The daemon's core: which containers are managed, under which rule sets, kept in step
//! with the kernel maps.

pub mod kernel;
pub mod registry;

#[cfg(test)]
mod tests;
