//! Shared by the tests that run real brokers from the operator's rendered properties.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod loopback;
