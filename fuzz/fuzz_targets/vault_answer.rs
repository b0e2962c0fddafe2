//! Vault's answers: any status and body become an `Answer` or a `Failure`,
//! never a panic; a success never yields a failure with a status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vinit::vault::{answer_from_response, Failure};

fuzz_target!(|input: (u16, &[u8])| {
    let (status, body) = input;
    // Mostly successes: that is where the typed answer is built.
    let status = if status % 4 == 0 { 100 + status % 500 } else { 200 };
    match answer_from_response(status, None, body) {
        Ok(answer) => {
            assert!((200..300).contains(&status));
            let _ = answer.data.keys();
            if let Some(lease) = &answer.lease_id {
                assert!(!lease.is_empty());
            }
        }
        Err(Failure::Status { code, .. }) => assert!(!(200..300).contains(&code)),
        Err(_) => assert!((200..300).contains(&status)),
    }
});
