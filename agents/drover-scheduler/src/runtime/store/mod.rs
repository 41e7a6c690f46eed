//! The scheduler's keys in the store: one module per engine, each turning plans into
//! batches of writes and loading its state at start-up.

pub mod apps;
pub mod jobs;
