//! The reconcilers' building blocks. `desired` computes, without any I/O, what the backend
//! should hold for a resource.

pub mod desired;
