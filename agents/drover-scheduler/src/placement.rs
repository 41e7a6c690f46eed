//! Placement of app instances on a cluster snapshot (filled in by the placement work).
