//! `vault:PATH#KEY[#VERSION]` references, whole or inline: any text parses
//! or is refused with a message, never a panic; what parses is well formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vinit::reference::{self, Piece};

fuzz_target!(|value: &str| {
    let Ok(Some(template)) = reference::parse(value) else {
        return;
    };
    assert!(!template.pieces.is_empty(), "a reference with no piece");
    for piece in &template.pieces {
        match piece {
            Piece::Text(text) => assert!(!text.is_empty(), "an empty text piece"),
            Piece::Field(field) => {
                assert!(!field.read.path.is_empty(), "a read with no path");
                assert!(!field.read.path.starts_with('/'), "a path with a leading /");
            }
            Piece::Login => {}
        }
    }
});
