//! Strom's broker library; see README.md in this crate.
