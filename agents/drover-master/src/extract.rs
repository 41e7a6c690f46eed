//! Path and query extractors whose rejections are JSON [`ApiError`]s naming the
//! problem; they live in `drover_service::http`, beside `ApiJson`.
//!
//! [`ApiError`]: drover_api::ApiError

pub use drover_service::http::{ApiPath, ApiQuery};
