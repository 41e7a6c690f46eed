//! ISO 8601 repeating intervals and their arithmetic (filled in by the schedule work).
