//! Feeds arbitrary bytes to the gRPC conversion boundary, as each side of the link and
//! the Bind call decode them (prost, then our conversion to domain types): nothing may
//! panic, and a stanza a router accepts is written out in a form that parses back to
//! the same element.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_rpc::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::edge_message(data);
    fuzzing::router_message(data);
    fuzzing::bind_request(data);
});
