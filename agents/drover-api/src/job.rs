//! Chronos-compatible job definitions (filled in by the jobs work).
