//! The redaction matcher, differentially: values, and a text cut into
//! writes; streaming the writes through `StreamRedactor` must give exactly
//! what one naive leftmost-longest replacement over the whole text gives,
//! and only a proper prefix of a value may ever be held back.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use vinit::redact::{redact_whole, Placed, Redactor, StreamRedactor};

#[derive(Arbitrary, Debug)]
struct Case {
    /// Map every byte onto a 3-letter alphabet, so values overlap and
    /// repeat the way the interesting cases do.
    small_alphabet: bool,
    values: Vec<Vec<u8>>,
    writes: Vec<Vec<u8>>,
}

fn squash(bytes: &[u8], small: bool) -> Vec<u8> {
    if small {
        bytes.iter().map(|b| b"abc"[usize::from(b % 3)]).collect()
    } else {
        bytes.to_vec()
    }
}

fuzz_target!(|case: Case| {
    let values: Vec<Vec<u8>> = case
        .values
        .iter()
        .take(8)
        .map(|v| squash(&v[..v.len().min(24)], case.small_alphabet))
        .collect();
    let writes: Vec<Vec<u8>> = case
        .writes
        .iter()
        .map(|w| squash(w, case.small_alphabet))
        .collect();
    let placed = values.iter().map(|v| Placed {
        source: "FUZZ",
        value: v,
    });
    let (redactor, _) = Redactor::new(placed).expect("a small pattern set always builds");
    let longest = values.iter().map(Vec::len).filter(|l| *l >= 4).max().unwrap_or(0);

    let mut stream = StreamRedactor::default();
    let mut streamed = Vec::new();
    for write in &writes {
        stream.feed(&redactor, write, &mut streamed);
        assert!(stream.held() < longest.max(1), "held {} bytes", stream.held());
    }
    stream.finish(&redactor, &mut streamed);
    assert_eq!(stream.held(), 0);

    let whole: Vec<u8> = writes.concat();
    let value_refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    assert_eq!(streamed, redact_whole(&value_refs, &whole));
});
