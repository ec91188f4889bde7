//! Route handlers, one file per resource. Handlers translate HTTP to service calls and back.

pub mod buckets;
pub mod folders;
pub mod imports;
pub mod items;
pub mod jobs;
pub mod ops;
pub mod trash;
