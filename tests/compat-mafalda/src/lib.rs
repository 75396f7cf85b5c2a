//! Holder crate for the shared drop-in compatibility test (see tests/compat/).
