//! `--user` against the image's /etc/passwd and /etc/group, and
//! `--keep-caps` lists: any text resolves or is refused with a message,
//! never a panic; what resolves is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vinit::privileges::{capability_name, parse_capabilities, parse_capability, resolve_user};

fuzz_target!(|input: (&str, &str, &str)| {
    let (spec, passwd, group) = input;
    if let Ok(identity) = resolve_user(spec, passwd, group) {
        let mut seen = identity.groups.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), identity.groups.len(), "repeated groups");
        if spec.contains(':') {
            assert_eq!(identity.groups, [identity.gid], "NAME:GROUP gets GROUP only");
        } else if let Some(first) = identity.groups.first() {
            assert_eq!(*first, identity.gid, "the primary group comes first");
        }
    }
    if let Ok(caps) = parse_capabilities(spec) {
        for cap in caps.iter() {
            assert_eq!(parse_capability(&capability_name(cap)), Ok(cap));
        }
    }
});
