//! Custom resources: what the API server does with the objects of a
//! CustomResourceDefinition.
//!
//! - [`structural`]: a version's schema; pruning, defaulting, validation.

pub mod structural;
