//! One request frame body (no size prefix) into the broker's request router, exactly as a
//! connection hands it over. Nothing may panic, and every reply must keep
//! `strom_fuzz::check_reply`'s invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reply = strom_fuzz::harness().handle(data);
    strom_fuzz::check_reply(data, &reply);
});
