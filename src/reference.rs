//! References to secrets in environment values, compatible with bank-vaults
//! vault-env: `vault:PATH#KEY`, `vault:PATH#KEY#VERSION`, inline
//! `...${vault:PATH#KEY}...`, `vault:login`, with `bao:` as an alias.
//!
//! Pure parsing: no I/O, no secret values. A malformed reference is a
//! configuration error naming the variable.

use std::fmt;

/// One read from Vault: an API path and, for KV v2, a version. Every
/// reference with the same `Read` is served by a single request, so the
/// `username` and `password` of one dynamic credential come from one lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Read {
    pub path: String,
    pub version: Option<u64>,
}

impl fmt::Display for Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(version) => write!(f, "{} (version {version})", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// A field of a read: `vault:PATH#KEY[#VERSION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    pub read: Read,
    pub key: String,
}

/// A piece of an environment value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Field(FieldRef),
    /// `vault:login`: the token vinit logged in with.
    Login,
}

/// An environment value that holds at least one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

impl Template {
    pub fn fields(&self) -> impl Iterator<Item = &FieldRef> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Field(field) => Some(field),
            _ => None,
        })
    }

    pub fn wants_login(&self) -> bool {
        self.pieces.contains(&Piece::Login)
    }
}

const PREFIXES: [&str; 2] = ["vault:", "bao:"];

/// Parses `value` of variable `name`. `Ok(None)`: no reference, the value
/// passes unchanged. `Err`: a malformed reference, described for the user.
pub fn parse(value: &str) -> Result<Option<Template>, String> {
    for prefix in PREFIXES {
        if let Some(body) = value.strip_prefix(prefix) {
            return Ok(Some(Template {
                pieces: vec![parse_body(body, prefix)?],
            }));
        }
    }
    if !PREFIXES
        .iter()
        .any(|prefix| value.contains(&format!("${{{prefix}")))
    {
        return Ok(None);
    }
    let mut pieces = Vec::new();
    let mut rest = value;
    while let Some((start, prefix)) = next_inline(rest) {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_string()));
        }
        let inner = &rest[start + 2 + prefix.len()..];
        let end = inner
            .find('}')
            .ok_or_else(|| format!("\"${{{prefix}\" is not closed with \"}}\""))?;
        pieces.push(parse_body(&inner[..end], prefix)?);
        rest = &inner[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(Some(Template { pieces }))
}

fn next_inline(text: &str) -> Option<(usize, &'static str)> {
    PREFIXES
        .iter()
        .filter_map(|prefix| text.find(&format!("${{{prefix}")).map(|at| (at, *prefix)))
        .min_by_key(|(at, _)| *at)
}

fn parse_body(body: &str, prefix: &str) -> Result<Piece, String> {
    if body == "login" {
        return Ok(Piece::Login);
    }
    let shape = format!("expected {prefix}PATH#KEY or {prefix}PATH#KEY#VERSION");
    if body.is_empty() {
        return Err(format!("\"{prefix}\" names no secret; {shape}"));
    }
    let parts: Vec<&str> = body.split('#').collect();
    let (path, key, version) = match parts.as_slice() {
        [path] => return Err(format!("\"{prefix}{path}\" has no #KEY; {shape}")),
        [path, key] => (*path, *key, None),
        [path, key, version] => (*path, *key, Some(*version)),
        _ => return Err(format!("\"{prefix}{body}\" has too many #; {shape}")),
    };
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Err(format!("\"{prefix}{body}\" has no PATH; {shape}"));
    }
    if key.is_empty() {
        return Err(format!("\"{prefix}{body}\" has an empty KEY; {shape}"));
    }
    let version = match version {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| format!("\"{prefix}{body}\": VERSION \"{text}\" is not a positive number"))?,
        ),
    };
    Ok(Piece::Field(FieldRef {
        read: Read {
            path: path.to_string(),
            version,
        },
        key: key.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(path: &str, key: &str, version: Option<u64>) -> Piece {
        Piece::Field(FieldRef {
            read: Read {
                path: path.into(),
                version,
            },
            key: key.into(),
        })
    }

    #[test]
    fn whole_value_references() {
        let t = parse("vault:secret/data/app#db_password").unwrap().unwrap();
        assert_eq!(t.pieces, [field("secret/data/app", "db_password", None)]);
        let t = parse("bao:secret/data/app#k#3").unwrap().unwrap();
        assert_eq!(t.pieces, [field("secret/data/app", "k", Some(3))]);
        assert_eq!(parse("vault:login").unwrap().unwrap().pieces, [Piece::Login]);
        assert_eq!(
            parse("vault:/kv/app#k").unwrap().unwrap().pieces,
            [field("kv/app", "k", None)]
        );
    }

    #[test]
    fn inline_references() {
        let t = parse("postgres://${vault:db/creds/app#username}:${bao:db/creds/app#password}@db/x")
            .unwrap()
            .unwrap();
        assert_eq!(
            t.pieces,
            [
                Piece::Text("postgres://".into()),
                field("db/creds/app", "username", None),
                Piece::Text(":".into()),
                field("db/creds/app", "password", None),
                Piece::Text("@db/x".into()),
            ]
        );
        let t = parse("token=${vault:login}").unwrap().unwrap();
        assert!(t.wants_login());
    }

    #[test]
    fn plain_values_are_not_references() {
        for value in [
            "",
            "hello",
            "vaultish:x",
            "a vault:x#y",
            "$vault:x#y",
            "{vault:x#y}",
        ] {
            assert_eq!(parse(value).unwrap(), None, "{value}");
        }
    }

    #[test]
    fn malformed_references_are_errors() {
        for value in [
            "vault:",
            "vault:secret/data/app",
            "vault:#key",
            "vault:secret/data/app#",
            "vault:secret/data/app#k#two",
            "vault:secret/data/app#k#0",
            "vault:a#b#1#2",
            "bao:",
            "x=${vault:secret/data/app#k",
            "x=${vault:secret/data/app}",
        ] {
            assert!(parse(value).is_err(), "{value} should be malformed");
        }
    }
}
