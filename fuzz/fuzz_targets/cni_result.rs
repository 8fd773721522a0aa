//! Feeds arbitrary bytes to the decoding of what CNI plugins print, as a
//! broken or hostile plugin could print them: it must never panic, and a
//! result it accepts must be one the engine can use.
#![no_main]

use berth_engine::plugins::cni::{decode_error, decode_result};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_error(data);
    if let Ok(r) = decode_result(data) {
        for ip in &r.ips {
            assert!(
                ip.interface.is_none_or(|i| i < r.interfaces.len()),
                "an interface index past the list"
            );
        }
        let (addresses, _, _) = r.sandbox_view("eth0");
        assert!(addresses.len() <= r.ips.len());
    }
});
