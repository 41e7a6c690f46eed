//! Marathon-compatible app definitions (filled in by the apps work).
