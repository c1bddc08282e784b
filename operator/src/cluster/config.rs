//! Each broker's server.properties, and the hash of what needs a restart. (stub)
