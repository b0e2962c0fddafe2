//! The image's final filesystem: layers applied in order with their
//! whiteouts (`.wh.NAME` deletes NAME, `.wh..wh..opq` empties a directory).
//! Also says which layer deleted a file, so findings in files that no longer
//! show can name both the layer that added them and the one that hid them.

use std::collections::BTreeMap;

use crate::image::{Entry, EntryKind, Image};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Where a final path comes from: (layer index, entry index).
pub type Origin = (usize, usize);

pub struct FinalFs<'a> {
    image: &'a Image,
    files: BTreeMap<String, Origin>,
}

fn parent_and_name(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((parent, name)) => (parent, name),
        None => ("/", path),
    }
}

fn is_under(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return path != "/";
    }
    path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

impl<'a> FinalFs<'a> {
    pub fn build(image: &'a Image) -> FinalFs<'a> {
        let mut files: BTreeMap<String, Origin> = BTreeMap::new();
        for (layer_index, layer) in image.layers.iter().enumerate() {
            for (entry_index, entry) in layer.entries.iter().enumerate() {
                let (parent, name) = parent_and_name(&entry.path);
                if name == OPAQUE {
                    let dir = parent.to_string();
                    files.retain(|path, (from, _)| *from == layer_index || !is_under(path, &dir));
                    continue;
                }
                if let Some(hidden) = name.strip_prefix(WHITEOUT) {
                    let target = if parent == "/" {
                        format!("/{hidden}")
                    } else {
                        format!("{parent}/{hidden}")
                    };
                    files.retain(|path, _| path != &target && !is_under(path, &target));
                    continue;
                }
                if entry.kind != EntryKind::Directory {
                    // A file replacing a directory hides what was below it.
                    files.retain(|path, _| !is_under(path, &entry.path));
                }
                files.insert(entry.path.clone(), (layer_index, entry_index));
            }
        }
        FinalFs { image, files }
    }

    pub fn entry(&self, origin: Origin) -> &'a Entry {
        &self.image.layers[origin.0].entries[origin.1]
    }

    /// The entry at `path`, following symlinks (at most 16 hops, in any
    /// component: merged-/usr images have `/sbin -> usr/sbin`) and hard links.
    pub fn resolve(&self, path: &str) -> Option<(Origin, &'a Entry)> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        pending.reverse();
        let mut current = String::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            let candidate = normalise_dots(&format!("{current}/{part}"));
            if part == "." || part == ".." {
                current = if candidate == "/" {
                    String::new()
                } else {
                    candidate
                };
                continue;
            }
            let Some(&origin) = self.files.get(&candidate) else {
                // Layers need not list parent directories.
                if pending.is_empty() {
                    return None;
                }
                current = candidate;
                continue;
            };
            let entry = self.entry(origin);
            match (entry.kind, &entry.link) {
                (EntryKind::Symlink, Some(target)) => {
                    hops += 1;
                    if hops > 16 {
                        return None;
                    }
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(
                        target
                            .split('/')
                            .filter(|p| !p.is_empty())
                            .rev()
                            .map(String::from),
                    );
                }
                (EntryKind::HardLink, Some(target)) if pending.is_empty() => {
                    let origin = *self.files.get(target)?;
                    // A hard link shares the target's content.
                    return Some((origin, self.entry(origin)));
                }
                _ if pending.is_empty() => return Some((origin, entry)),
                _ => current = candidate,
            }
        }
        let origin = *self.files.get(if current.is_empty() { "/" } else { &current })?;
        Some((origin, self.entry(origin)))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// Paths directly or indirectly below `dir`.
    pub fn children(&self, dir: &str) -> Vec<&str> {
        self.files
            .keys()
            .filter(|path| is_under(path, dir))
            .map(String::as_str)
            .collect()
    }

    /// Whether the entry `(layer, entry)` is still visible at the end.
    pub fn is_visible(&self, origin: Origin) -> bool {
        let entry = self.entry(origin);
        self.files.get(&entry.path) == Some(&origin)
    }

    pub fn paths(&self) -> impl Iterator<Item = (&String, &Origin)> {
        self.files.iter()
    }
}

fn normalise_dots(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Layer;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            link: None,
            content: Vec::new(),
        }
    }

    fn image(layers: Vec<Vec<Entry>>) -> Image {
        Image {
            name: "test".into(),
            config: Default::default(),
            raw_config: Vec::new(),
            history: Vec::new(),
            layers: layers
                .into_iter()
                .map(|entries| Layer {
                    digest: "sha256:x".into(),
                    history_step: None,
                    entries,
                })
                .collect(),
        }
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_files() {
        let image = image(vec![
            vec![file("/a/token"), file("/a/keep"), file("/b/x")],
            vec![file("/a/.wh.token"), file("/b/.wh..wh..opq"), file("/b/y")],
        ]);
        let fs = FinalFs::build(&image);
        assert!(!fs.exists("/a/token"));
        assert!(fs.exists("/a/keep"));
        assert!(!fs.exists("/b/x"));
        assert!(fs.exists("/b/y"));
        assert!(!fs.is_visible((0, 0)));
    }

    #[test]
    fn relative_symlinks_resolve() {
        let mut link = file("/sbin/init");
        link.kind = EntryKind::Symlink;
        link.link = Some("../usr/sbin/vinit".into());
        let image = image(vec![vec![file("/usr/sbin/vinit"), link]]);
        let fs = FinalFs::build(&image);
        let (_, entry) = fs.resolve("/sbin/init").unwrap();
        assert_eq!(entry.path, "/usr/sbin/vinit");
    }

    #[test]
    fn symlinked_directories_resolve() {
        let mut link = file("/sbin");
        link.kind = EntryKind::Symlink;
        link.link = Some("usr/sbin".into());
        let image = image(vec![vec![link, file("/usr/sbin/vinit")]]);
        let fs = FinalFs::build(&image);
        let (_, entry) = fs.resolve("/sbin/vinit").unwrap();
        assert_eq!(entry.path, "/usr/sbin/vinit");
        assert!(fs.resolve("/sbin/nothing").is_none());
    }
}
