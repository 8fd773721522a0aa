//! Feeds arbitrary bytes to the decoding of Docker network plugins'
//! answers, as a plugin could send them on its socket: the HTTP framing,
//! then the JSON of every answer berth reads and the checks that turn it
//! into what the engine does. Nothing may panic, and every error must
//! print as one line (it ends up as the CLI's one error line).
#![no_main]

use std::fmt::Display;

use berth_engine::plugins::docker::protocol::{
    CapabilitiesResponse, CreateEndpointResponse, EndpointInterface, ErrorResponse, JoinResponse,
};
use berth_engine::plugins::docker::{
    ActivateResponse, Joined, check_endpoint, decode_response, parse_response, parse_scope,
};
use libfuzzer_sys::fuzz_target;

fn flat(e: impl Display) {
    let s = e.to_string();
    assert!(
        !s.contains('\n') && !s.contains('\r'),
        "a multi-line error: {s:?}"
    );
}

fn decode_all(status: u16, body: &[u8]) {
    if let Err(e) = decode_response::<ErrorResponse>(status, body) {
        flat(e);
    }
    if let Err(e) = decode_response::<ActivateResponse>(status, body) {
        flat(e);
    }
    match decode_response::<CapabilitiesResponse>(status, body) {
        Ok(c) => {
            if let Err(e) = parse_scope(&c) {
                flat(e);
            }
        }
        Err(e) => flat(e),
    }
    let sent = EndpointInterface {
        address: "10.0.0.2/24".into(),
        ..Default::default()
    };
    match decode_response::<CreateEndpointResponse>(status, body) {
        Ok(r) => {
            if let Err(e) = check_endpoint(&sent, r.interface.as_ref()) {
                flat(e);
            }
        }
        Err(e) => flat(e),
    }
    match decode_response::<JoinResponse>(status, body) {
        Ok(r) => {
            if let Err(e) = Joined::parse(&r) {
                flat(e);
            }
        }
        Err(e) => flat(e),
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as a whole answer off the socket …
    for eof in [false, true] {
        match parse_response(data, eof) {
            Ok(Some(r)) => decode_all(r.status, &r.body),
            Ok(None) => {}
            Err(e) => flat(e),
        }
    }
    // … and as the body of a 200 (the JSON alone).
    decode_all(200, data);
});
