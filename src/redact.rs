//! Output redaction (`--redact`): the pure, streaming matcher that replaces
//! every secret value in a byte stream by `[redacted]`. No I/O here (the
//! pipes live in `pump`); nothing here ever logs a value.
//!
//! Semantics are those of one leftmost-longest replacement over the whole
//! stream ([`redact_whole`] is that definition, written naively), delivered
//! as the bytes arrive: a [`StreamRedactor`] holds back only a tail of the
//! input that is a proper prefix of some secret (the following bytes decide
//! whether it is one), and emits every other byte at once, in order.
//!
//! The pattern set lives in a [`Redactor`] behind a [`SharedRedactor`]
//! handle, so that running life can replace it (`set_secrets`) when values
//! rotate while the streams keep flowing. Values shorter than
//! [`MIN_SECRET_LEN`] bytes are not redacted (they would mangle ordinary
//! output); `set_secrets` says which sources were left out so the caller can
//! warn.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use aho_corasick::packed::{Config, MatchKind, Searcher};
use aho_corasick::Span;
use zeroize::Zeroizing;

/// What every secret value is replaced with.
pub const REPLACEMENT: &[u8] = b"[redacted]";

/// Values per searcher (the packed searcher's limit).
const GROUP: usize = 128;

/// Values shorter than this are not redacted.
pub const MIN_SECRET_LEN: usize = 4;

/// A value to redact and where it was placed (a variable name or
/// `template DEST`), for the warning when it is too short.
pub struct Placed<'a> {
    pub source: &'a str,
    pub value: &'a [u8],
}

/// The set of values to redact. The automaton's tables encode the values
/// and are not overwritten on drop (aho-corasick owns them); vinit's own
/// copies are.
#[derive(Default)]
pub struct Redactor {
    /// Distinct values, longest first.
    patterns: Vec<Zeroizing<Vec<u8>>>,
    /// Rabin-Karp searchers (aho-corasick's `packed`, at most 128 values
    /// each); empty when there is nothing to redact.
    searchers: Vec<Searcher>,
    longest: usize,
}

impl Redactor {
    /// A redactor for `values`; see [`Redactor::set_secrets`].
    pub fn new<'a>(values: impl IntoIterator<Item = Placed<'a>>) -> Result<(Redactor, Vec<String>), String> {
        let mut redactor = Redactor::default();
        let skipped = redactor.set_secrets(values)?;
        Ok((redactor, skipped))
    }

    /// Replaces the pattern set with `values`. Returns the sources of the
    /// values left out for being shorter than [`MIN_SECRET_LEN`] (each
    /// named once). On error (a pattern set too large for the automaton)
    /// the previous set stays.
    pub fn set_secrets<'a>(
        &mut self,
        values: impl IntoIterator<Item = Placed<'a>>,
    ) -> Result<Vec<String>, String> {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        for placed in values {
            if placed.value.len() < MIN_SECRET_LEN {
                if !placed.value.is_empty() && !skipped.iter().any(|s| s == placed.source) {
                    skipped.push(placed.source.to_string());
                }
                continue;
            }
            if !patterns.iter().any(|p| p.as_slice() == placed.value) {
                patterns.push(Zeroizing::new(placed.value.to_vec()));
            }
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        // aho-corasick's packed Rabin-Karp searcher alone: its automata
        // (even the NFA without the `AhoCorasick` front end) cost 45 KB of
        // the 3 MB budget (measured).
        let mut config = Config::new();
        config
            .match_kind(MatchKind::LeftmostLongest)
            .only_rabin_karp(true)
            .heuristic_pattern_limits(false);
        let searchers = patterns
            .chunks(GROUP)
            .map(|group| {
                config
                    .builder()
                    .extend(group.iter().map(|p| p.as_slice()))
                    .build()
            })
            .collect::<Option<Vec<Searcher>>>()
            .ok_or("cannot build the redaction matcher")?;
        self.longest = patterns.first().map_or(0, |p| p.len());
        self.patterns = patterns;
        self.searchers = searchers;
        Ok(skipped)
    }

    /// How many distinct values are redacted.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Writes the redacted form of `buf` to `out` and returns how much of
    /// `buf` it consumed; the rest (only when `!ended`) is a proper prefix
    /// of some value and must be offered again with the bytes that follow.
    fn scan(&self, buf: &[u8], ended: bool, out: &mut Vec<u8>) -> usize {
        if self.searchers.is_empty() {
            out.extend_from_slice(buf);
            return buf.len();
        }
        // A value starting before `settled` lies entirely inside `buf`, so
        // the leftmost-longest choice there is final.
        let settled = if ended {
            buf.len()
        } else {
            buf.len().saturating_sub(self.longest - 1)
        };
        let mut pos = 0;
        while let Some((start, end)) = self.leftmost_longest(buf, pos) {
            if start >= settled {
                break;
            }
            out.extend_from_slice(&buf[pos..start]);
            out.extend_from_slice(REPLACEMENT);
            pos = end;
        }
        // No value starts in [pos, settled): those bytes are plain.
        let mut at = pos.max(settled);
        out.extend_from_slice(&buf[pos..at]);
        // The unsettled tail, byte by byte (shorter than the longest value).
        while at < buf.len() {
            let rest = &buf[at..];
            if self.may_continue(rest) {
                return at;
            }
            match self.longest_at(rest) {
                Some(len) => {
                    out.extend_from_slice(REPLACEMENT);
                    at += len;
                }
                None => {
                    out.push(rest[0]);
                    at += 1;
                }
            }
        }
        buf.len()
    }

    /// The leftmost match at or after `from` (the longest there), over
    /// every group of values.
    fn leftmost_longest(&self, buf: &[u8], from: usize) -> Option<(usize, usize)> {
        let span = Span {
            start: from,
            end: buf.len(),
        };
        self.searchers
            .iter()
            .filter_map(|searcher| searcher.find_in(buf, span))
            .map(|found| (found.start(), found.end()))
            .min_by_key(|(start, end)| (*start, std::cmp::Reverse(*end)))
    }

    /// True when `rest` is a proper prefix of some value (more bytes could
    /// make it a match, or a longer one).
    fn may_continue(&self, rest: &[u8]) -> bool {
        self.patterns
            .iter()
            .take_while(|p| p.len() > rest.len())
            .any(|p| p.starts_with(rest))
    }

    /// The length of the longest value `rest` begins with.
    fn longest_at(&self, rest: &[u8]) -> Option<usize> {
        self.patterns
            .iter()
            .find(|p| rest.starts_with(p))
            .map(|p| p.len())
    }
}

/// The state of one stream (stdout or stderr): the bytes held back because
/// they may begin a value. Overwritten on drop.
#[derive(Default)]
pub struct StreamRedactor {
    held: Zeroizing<Vec<u8>>,
}

impl StreamRedactor {
    /// Appends to `out` everything `input` (after what was held) settles.
    pub fn feed(&mut self, redactor: &Redactor, input: &[u8], out: &mut Vec<u8>) {
        if self.held.is_empty() {
            let consumed = redactor.scan(input, false, out);
            self.held.extend_from_slice(&input[consumed..]);
        } else {
            let mut joined = Zeroizing::new(std::mem::take(&mut *self.held));
            joined.extend_from_slice(input);
            let consumed = redactor.scan(&joined, false, out);
            self.held.extend_from_slice(&joined[consumed..]);
        }
    }

    /// The stream ended: appends what was held, redacted, to `out`.
    pub fn finish(&mut self, redactor: &Redactor, out: &mut Vec<u8>) {
        let held = Zeroizing::new(std::mem::take(&mut *self.held));
        redactor.scan(&held, true, out);
    }

    /// How many bytes are held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// The pattern set shared by the streams and by whoever updates it
/// (start-up sets it; running life replaces it when values rotate).
#[derive(Clone, Default)]
pub struct SharedRedactor(Arc<Mutex<Arc<Redactor>>>);

impl SharedRedactor {
    pub fn new(redactor: Redactor) -> Self {
        SharedRedactor(Arc::new(Mutex::new(Arc::new(redactor))))
    }

    /// The set in force now (streams take it once per chunk).
    pub fn current(&self) -> Arc<Redactor> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the set; see [`Redactor::set_secrets`]. Pass every value
    /// to hide, the ones still in force included.
    pub fn set_secrets<'a>(
        &self,
        values: impl IntoIterator<Item = Placed<'a>>,
    ) -> Result<Vec<String>, String> {
        let (redactor, skipped) = Redactor::new(values)?;
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(redactor);
        Ok(skipped)
    }
}

/// The definition the streaming matcher must agree with: at each position,
/// the longest value (of at least [`MIN_SECRET_LEN`] bytes) that starts
/// there is replaced; otherwise the byte is kept. Quadratic; for tests and
/// fuzzing.
pub fn redact_whole(values: &[&[u8]], input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let longest = values
            .iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN && input[at..].starts_with(v))
            .map(|v| v.len())
            .max();
        match longest {
            Some(len) => {
                out.extend_from_slice(REPLACEMENT);
                at += len;
            }
            None => {
                out.push(input[at]);
                at += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(values: &[&str]) -> Redactor {
        let placed = values.iter().map(|v| Placed {
            source: "TEST",
            value: v.as_bytes(),
        });
        Redactor::new(placed).unwrap().0
    }

    /// Feeds `chunks` one by one, collecting what comes out after each.
    fn stream(redactor: &Redactor, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut state = StreamRedactor::default();
        let mut each = Vec::new();
        let mut all = Vec::new();
        for chunk in chunks {
            let mut out = Vec::new();
            state.feed(redactor, chunk, &mut out);
            all.extend_from_slice(&out);
            each.push(out);
        }
        state.finish(redactor, &mut all);
        (each, all)
    }

    #[test]
    fn replaces_a_value_mid_line() {
        let r = redactor(&["hunter22"]);
        let (_, all) = stream(&r, &[b"password=hunter22; ok\n"]);
        assert_eq!(all, b"password=[redacted]; ok\n");
    }

    #[test]
    fn catches_a_value_split_across_writes_and_holds_only_its_prefix() {
        let r = redactor(&["hunter22"]);
        let (each, all) = stream(&r, &[b"pw=hun", b"ter22!"]);
        assert_eq!(each[0], b"pw=", "only the possible beginning is held");
        assert_eq!(each[1], b"[redacted]!");
        assert_eq!(all, b"pw=[redacted]!");
    }

    #[test]
    fn one_byte_at_a_time() {
        let r = redactor(&["s3cr3t-value"]);
        let input = b"a s3cr3t-value and s3cr3t-valu and s3cr3t-value";
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        let (_, all) = stream(&r, &chunks);
        assert_eq!(all, b"a [redacted] and s3cr3t-valu and [redacted]");
    }

    #[test]
    fn a_prefix_that_turns_out_plain_is_released_unchanged() {
        let r = redactor(&["abcdef"]);
        let (each, all) = stream(&r, &[b"xxabc", b"dX"]);
        assert_eq!(each[0], b"xx");
        assert_eq!(each[1], b"abcdX");
        assert_eq!(all, b"xxabcdX");
        let (each, all) = stream(&r, &[b"end abcde"]);
        assert_eq!(each[0], b"end ");
        assert_eq!(all, b"end abcde", "held bytes come out at the end of the stream");
    }

    #[test]
    fn longest_match_wins_even_across_writes() {
        let r = redactor(&["abcd", "abcdefgh"]);
        let (each, all) = stream(&r, &[b"<abcd", b"efgh>"]);
        assert_eq!(each[0], b"<", "abcd may still grow into abcdefgh");
        assert_eq!(all, b"<[redacted]>");
        let (_, all) = stream(&r, &[b"<abcd", b"efg>"]);
        assert_eq!(all, b"<[redacted]efg>");
    }

    #[test]
    fn short_values_are_left_alone_and_named() {
        let placed = [
            Placed {
                source: "PIN",
                value: b"123",
            },
            Placed {
                source: "PASSWORD",
                value: b"long-enough",
            },
        ];
        let (r, skipped) = Redactor::new(placed).unwrap();
        assert_eq!(skipped, ["PIN"]);
        let (_, all) = stream(&r, &[b"123 long-enough"]);
        assert_eq!(all, b"123 [redacted]");
    }

    #[test]
    fn no_values_means_bytes_pass_through() {
        let r = Redactor::default();
        let input: Vec<u8> = (0..=255u8).collect();
        let (each, _) = stream(&r, &[&input]);
        assert_eq!(each[0], input);
    }

    #[test]
    fn shared_set_can_be_replaced_while_streaming() {
        let shared = SharedRedactor::new(redactor(&["old-secret"]));
        let mut state = StreamRedactor::default();
        let mut out = Vec::new();
        state.feed(&shared.current(), b"old-secret ", &mut out);
        shared
            .set_secrets([Placed {
                source: "X",
                value: b"new-secret",
            }])
            .unwrap();
        state.feed(&shared.current(), b"new-secret old-secret", &mut out);
        state.finish(&shared.current(), &mut out);
        assert_eq!(out, b"[redacted] [redacted] old-secret");
    }

    #[test]
    fn agrees_with_the_whole_stream_definition_for_every_split() {
        let values: [&[u8]; 4] = [b"abab", b"ababab", b"baba", b"xyzw"];
        let r = Redactor::new(values.iter().map(|v| Placed {
            source: "V",
            value: v,
        }))
        .unwrap()
        .0;
        let input = b"abababababa xyzbabab xyzw abab";
        let expected = redact_whole(&values, input);
        for first in 0..input.len() {
            for second in first..input.len() {
                let chunks = [&input[..first], &input[first..second], &input[second..]];
                let (_, all) = stream(&r, &chunks);
                assert_eq!(all, expected, "split at {first}, {second}");
            }
        }
    }

    #[test]
    fn more_values_than_one_searcher_holds() {
        let values: Vec<String> = (0..300).map(|i| format!("value-{i:03}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let r = redactor(&refs);
        assert_eq!(r.searchers.len(), 3);
        let input = b"value-299 value-000 value-128 value-12 value-1280";
        let (_, all) = stream(&r, &[&input[..13], &input[13..]]);
        assert_eq!(all, b"[redacted] [redacted] [redacted] value-12 [redacted]0");
        let value_refs: Vec<&[u8]> = refs.iter().map(|v| v.as_bytes()).collect();
        assert_eq!(all, redact_whole(&value_refs, input));
    }

    // Crashes and disagreements found by fuzzing (fuzz/fuzz_targets/redact.rs)
    // are kept below as regression tests.
}
