//! Spec checks the API server cannot make. (stub)
