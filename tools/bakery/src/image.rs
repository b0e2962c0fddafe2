//! Reads an image into memory: from the engine (`docker save`), from a
//! docker-save tarball or from an OCI layout (a directory or a tarball
//! holding `index.json`). Owns the formats; knows nothing about checks.
//!
//! The result is the image config (parsed and raw), its history, and every
//! layer's entries in order, each layer tied to the history step that made it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::error::BakeryError;

/// One file, directory, link or whiteout inside a layer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Absolute, normalised path (`/etc/passwd`).
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Symlink or hard link target.
    pub link: Option<String>,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    HardLink,
    Other,
}

/// One layer: its diff id, the history step that made it, its entries.
#[derive(Debug)]
pub struct Layer {
    pub digest: String,
    pub history_step: Option<usize>,
    pub entries: Vec<Entry>,
}

/// The parts of the image config the checks read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Option<HashMap<String, String>>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub working_dir: Option<String>,
}

/// Docker's healthcheck settings; durations in nanoseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default)]
    pub test: Option<Vec<String>>,
    #[serde(default)]
    pub start_period: Option<u64>,
    #[serde(default)]
    pub interval: Option<u64>,
    #[serde(default)]
    pub retries: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryStep {
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub empty_layer: bool,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: RunConfig,
    #[serde(default)]
    history: Vec<HistoryStep>,
    #[serde(default)]
    rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// A whole image, read.
#[derive(Debug)]
pub struct Image {
    pub name: String,
    pub config: RunConfig,
    /// The config blob as stored (searched for leaked values).
    pub raw_config: Vec<u8>,
    pub history: Vec<HistoryStep>,
    pub layers: Vec<Layer>,
}

impl Image {
    /// `reference` is a path to a tarball or an OCI layout directory, or
    /// else an image name the engine knows.
    pub fn load(reference: &str) -> Result<Image, BakeryError> {
        let path = Path::new(reference);
        if path.is_dir() {
            let source = BlobSource::Directory(path.to_path_buf());
            return Image::from_source(reference, &source);
        }
        if path.is_file() {
            let source = BlobSource::read_tarball(path)?;
            return Image::from_source(reference, &source);
        }
        let scratch = tempfile::tempdir().map_err(|e| BakeryError::io("a temporary directory", e))?;
        let saved = scratch.path().join("image.tar");
        let output = Command::new("docker")
            .args(["save", "--output"])
            .arg(&saved)
            .arg(reference)
            .output()
            .map_err(|e| BakeryError::io("the docker CLI", e))?;
        if !output.status.success() {
            return Err(BakeryError::Image(format!(
                "{reference}: not a file, not a directory, and `docker save` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let source = BlobSource::read_tarball(&saved)?;
        Image::from_source(reference, &source)
    }

    fn from_source(name: &str, source: &BlobSource) -> Result<Image, BakeryError> {
        let (config_bytes, layer_blobs) = if source.has("manifest.json") {
            docker_save_parts(source)?
        } else if source.has("index.json") {
            oci_parts(source)?
        } else {
            return Err(BakeryError::Image(format!(
                "{name}: neither a docker-save tarball (manifest.json) nor an OCI layout (index.json)"
            )));
        };
        let parsed: ConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| BakeryError::Image(format!("{name}: image config: {e}")))?;
        let layer_steps: Vec<usize> = parsed
            .history
            .iter()
            .enumerate()
            .filter(|(_, step)| !step.empty_layer)
            .map(|(index, _)| index)
            .collect();
        let mut layers = Vec::new();
        for (index, blob) in layer_blobs.iter().enumerate() {
            let bytes = source.read(blob)?;
            let entries =
                read_layer(&bytes).map_err(|e| BakeryError::Image(format!("{name}: layer {blob}: {e}")))?;
            layers.push(Layer {
                digest: parsed
                    .rootfs
                    .diff_ids
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| blob.clone()),
                history_step: layer_steps.get(index).copied(),
                entries,
            });
        }
        Ok(Image {
            name: name.to_string(),
            config: parsed.config,
            raw_config: config_bytes,
            history: parsed.history,
            layers,
        })
    }

    pub fn env(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .flatten()
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => (pair.clone(), String::new()),
            })
            .collect()
    }

    pub fn env_value(&self, name: &str) -> Option<String> {
        self.env().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The last history step whose command mentions `needle` (the step that
    /// set an ENV, LABEL, USER...).
    pub fn step_mentioning(&self, needle: &str) -> Option<usize> {
        self.history
            .iter()
            .rposition(|step| step.created_by.contains(needle))
    }
}

/// Where blobs come from: a directory or a tarball read into memory.
enum BlobSource {
    Directory(PathBuf),
    Tarball(HashMap<String, Vec<u8>>),
}

impl BlobSource {
    fn read_tarball(path: &Path) -> Result<BlobSource, BakeryError> {
        let file = std::fs::File::open(path).map_err(|e| BakeryError::io(&path.display().to_string(), e))?;
        let mut archive = tar::Archive::new(file);
        let mut files = HashMap::new();
        let entries = archive
            .entries()
            .map_err(|e| BakeryError::io(&path.display().to_string(), e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| BakeryError::io(&path.display().to_string(), e))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = normalise(&entry.path_bytes());
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| BakeryError::io(&path.display().to_string(), e))?;
            files.insert(name.trim_start_matches('/').to_string(), bytes);
        }
        Ok(BlobSource::Tarball(files))
    }

    fn has(&self, name: &str) -> bool {
        match self {
            BlobSource::Directory(dir) => dir.join(name).is_file(),
            BlobSource::Tarball(files) => files.contains_key(name),
        }
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BakeryError> {
        match self {
            BlobSource::Directory(dir) => {
                let path = dir.join(name);
                std::fs::read(&path).map_err(|e| BakeryError::io(&path.display().to_string(), e))
            }
            BlobSource::Tarball(files) => files
                .get(name)
                .cloned()
                .ok_or_else(|| BakeryError::Image(format!("{name}: missing from the tarball"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifest {
    config: String,
    #[serde(default)]
    layers: Vec<String>,
}

fn docker_save_parts(source: &BlobSource) -> Result<(Vec<u8>, Vec<String>), BakeryError> {
    let manifests: Vec<SaveManifest> = serde_json::from_slice(&source.read("manifest.json")?)
        .map_err(|e| BakeryError::Image(format!("manifest.json: {e}")))?;
    let manifest = manifests
        .into_iter()
        .next()
        .ok_or_else(|| BakeryError::Image("manifest.json lists no image".into()))?;
    Ok((source.read(&manifest.config)?, manifest.layers))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

fn oci_parts(source: &BlobSource) -> Result<(Vec<u8>, Vec<String>), BakeryError> {
    let mut document = source.read("index.json")?;
    // An index may point at another index (multi-platform); follow the first.
    for _ in 0..4 {
        let index: OciIndex =
            serde_json::from_slice(&document).map_err(|e| BakeryError::Image(format!("OCI index: {e}")))?;
        let first = index
            .manifests
            .first()
            .ok_or_else(|| BakeryError::Image("OCI index lists no manifest".into()))?;
        let bytes = source.read(&blob_path(&first.digest))?;
        if first.media_type.contains("index") || first.media_type.contains("manifest.list") {
            document = bytes;
            continue;
        }
        let manifest: OciManifest =
            serde_json::from_slice(&bytes).map_err(|e| BakeryError::Image(format!("OCI manifest: {e}")))?;
        let config = source.read(&blob_path(&manifest.config.digest))?;
        return Ok((
            config,
            manifest.layers.iter().map(|l| blob_path(&l.digest)).collect(),
        ));
    }
    Err(BakeryError::Image("OCI index nests too deep".into()))
}

/// `./etc/passwd`, `etc/passwd/` → `/etc/passwd`.
pub fn normalise(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let trimmed = text
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/');
    format!("/{trimmed}")
}

fn read_layer(bytes: &[u8]) -> Result<Vec<Entry>, std::io::Error> {
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader);
    let mut entries = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Directory,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => EntryKind::HardLink,
            _ => EntryKind::Other,
        };
        let mode = header.mode()?;
        let uid = header.uid()?;
        let gid = header.gid()?;
        let link = entry.link_name_bytes().map(|l| {
            if kind == EntryKind::HardLink {
                normalise(&l)
            } else {
                String::from_utf8_lossy(&l).into_owned()
            }
        });
        let path = normalise(&entry.path_bytes());
        let mut content = Vec::new();
        if kind == EntryKind::File {
            entry.read_to_end(&mut content)?;
        }
        entries.push(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            link,
            content,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalise(b"./etc/passwd"), "/etc/passwd");
        assert_eq!(normalise(b"run/vinit/"), "/run/vinit");
        assert_eq!(normalise(b"/sbin/vinit"), "/sbin/vinit");
    }

    #[test]
    fn oci_blob_paths_follow_the_digest() {
        assert_eq!(blob_path("sha256:abc"), "blobs/sha256/abc");
    }
}
