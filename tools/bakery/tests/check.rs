//! `vinit-bakery check` end to end on images built here as files, with no
//! daemon: docker-save tarballs and OCI layouts (gzip layers) made with the
//! `tar` crate, a good image and bad ones, every output format.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;

const BAKERY: &str = env!("CARGO_BIN_EXE_vinit-bakery");
const CANARY: &str = "canary-7f3a9c-password";

/// A minimal static x86_64 ELF header: one PT_LOAD, no interpreter.
fn static_elf(interpreter: bool) -> Vec<u8> {
    let mut elf = vec![0u8; 256];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[0x20] = 64;
    elf[0x36] = 56;
    elf[0x38] = 1;
    elf[64] = if interpreter { 3 } else { 1 };
    elf
}

enum Item {
    Dir(&'static str, u32, u64),
    File(&'static str, Vec<u8>, u32, u64),
    Whiteout(&'static str),
}

fn layer_tar(items: &[Item]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = tar::Header::new_gnu();
        let (path, data, mode, uid, kind): (String, &[u8], u32, u64, tar::EntryType) = match item {
            Item::Dir(path, mode, uid) => (path.to_string(), &[], *mode, *uid, tar::EntryType::Directory),
            Item::File(path, data, mode, uid) => {
                (path.to_string(), data, *mode, *uid, tar::EntryType::Regular)
            }
            Item::Whiteout(path) => {
                let (parent, name) = path.rsplit_once('/').unwrap();
                (
                    format!("{parent}/.wh.{name}"),
                    &[],
                    0o644,
                    0,
                    tar::EntryType::Regular,
                )
            }
        };
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, path.trim_start_matches('/'), data)
            .unwrap();
    }
    builder.into_inner().unwrap()
}

struct Layered {
    config: serde_json::Value,
    layers: Vec<Vec<u8>>,
}

/// An image: `steps` are (Dockerfile line, layer items or None for config-only).
fn image(config: serde_json::Value, steps: Vec<(&str, Option<Vec<Item>>)>) -> Layered {
    let mut history = Vec::new();
    let mut layers = Vec::new();
    for (created_by, items) in steps {
        history.push(serde_json::json!({ "created_by": created_by, "empty_layer": items.is_none() }));
        if let Some(items) = items {
            layers.push(layer_tar(&items));
        }
    }
    let diff_ids: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(i, _)| format!("sha256:{i:064x}"))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "history": history,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    Layered { config, layers }
}

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    builder.append_data(&mut header, path, data).unwrap();
}

/// The layout `docker save` wrote before Docker 25: `ID/layer.tar`.
fn docker_save(image: &Layered, path: &Path) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut layer_paths = Vec::new();
    for (index, layer) in image.layers.iter().enumerate() {
        let name = format!("{index:064x}/layer.tar");
        append(&mut builder, &name, layer);
        layer_paths.push(name);
    }
    append(&mut builder, "config.json", image.config.to_string().as_bytes());
    let manifest =
        serde_json::json!([{ "Config": "config.json", "RepoTags": ["test:1"], "Layers": layer_paths }]);
    append(&mut builder, "manifest.json", manifest.to_string().as_bytes());
    std::fs::write(path, builder.into_inner().unwrap()).unwrap();
}

fn sha256_name(index: usize, kind: &str) -> String {
    format!("sha256:{:064x}", index * 16 + kind.len())
}

/// An OCI layout directory with gzip-compressed layers.
fn oci_layout(image: &Layered, dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let write_blob = |digest: &str, data: &[u8]| {
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), data).unwrap();
    };
    let mut layers = Vec::new();
    for (index, layer) in image.layers.iter().enumerate() {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, layer).unwrap();
        let digest = sha256_name(index, "layer");
        write_blob(&digest, &gz.finish().unwrap());
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest, "size": 0,
        }));
    }
    let config_digest = sha256_name(1000, "config");
    write_blob(&config_digest, image.config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 0 },
        "layers": layers,
    });
    let manifest_digest = sha256_name(2000, "manifest");
    write_blob(&manifest_digest, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": 0 }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn base_layer() -> Vec<Item> {
    vec![
        Item::Dir("/etc", 0o755, 0),
        Item::File(
            "/etc/passwd",
            b"root:x:0:0::/root:/bin/sh\napp:x:10001:10001::/nonexistent:/bin/false\n".to_vec(),
            0o644,
            0,
        ),
        Item::Dir("/sbin", 0o755, 0),
        Item::File("/sbin/vinit", static_elf(false), 0o755, 0),
        Item::Dir("/run", 0o755, 0),
        Item::Dir("/run/vinit", 0o700, 10001),
    ]
}

fn good_image() -> Layered {
    image(
        serde_json::json!({
            "User": "app",
            "Env": ["PATH=/bin", "DB_PASSWORD=vault:secret/data/app#db_password", "DSN=postgres://u:${vault:secret/data/db#pw}@db/app"],
            "Entrypoint": ["/sbin/vinit", "--"],
            "Cmd": ["/app/server"],
            "Healthcheck": { "Test": ["CMD", "/app/health"], "StartPeriod": 90_000_000_000u64 },
        }),
        vec![
            ("COPY rootfs /", Some(base_layer())),
            ("ENV DB_PASSWORD=vault:secret/data/app#db_password", None),
            ("USER app", None),
            ("ENTRYPOINT [\"/sbin/vinit\", \"--\"]", None),
        ],
    )
}

/// Root user, a resolved secret in an ENV, a token file left in a layer
/// that a later layer deletes, a writable set-uid vinit, a short start_period.
fn bad_image() -> Layered {
    let mut base = base_layer();
    base[3] = Item::File("/sbin/vinit", static_elf(false), 0o4777, 0);
    image(
        serde_json::json!({
            "User": "root",
            "Env": ["DB_PASSWORD=hunter2-resolved", "VINIT_TIMEOUT=60s"],
            "Entrypoint": ["/sbin/vinit", "--"],
            "Cmd": ["/app/server"],
            "Healthcheck": { "Test": ["CMD", "/app/health"], "StartPeriod": 10_000_000_000u64 },
            "Labels": { "build.token": "hvs.CAESIabcdefghijklmnopqrstuvwxyz012345" },
        }),
        vec![
            ("COPY rootfs /", Some(base_layer())),
            (
                "RUN vault login && cp ~/.vault-token /root/",
                Some(vec![
                    Item::Dir("/root", 0o700, 0),
                    Item::File(
                        "/root/.vault-token",
                        b"hvs.CAESIabcdefghijklmnopqrstuvwxyz012345\n".to_vec(),
                        0o600,
                        0,
                    ),
                    Item::File(
                        "/etc/app.conf",
                        format!("password = {CANARY}\n").into_bytes(),
                        0o644,
                        0,
                    ),
                ]),
            ),
            (
                "RUN rm /root/.vault-token",
                Some(vec![Item::Whiteout("/root/.vault-token")]),
            ),
            (
                "COPY vinit /sbin/vinit",
                Some(vec![Item::File("/sbin/vinit", static_elf(false), 0o4777, 0)]),
            ),
            ("ENV DB_PASSWORD=hunter2-resolved", None),
            ("USER root", None),
        ],
    )
}

fn check(image: &Path, extra: &[&str]) -> (i32, String) {
    let output = Command::new(BAKERY)
        .arg("check")
        .arg("--skip-vinit-check")
        .args(extra)
        .arg(image)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap(), stdout)
}

fn saved(image: &Layered, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    docker_save(image, &path);
    path
}

#[test]
fn a_good_image_passes_from_a_tarball_and_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = saved(&good_image(), dir.path(), "good.tar");
    let (code, out) = check(&tarball, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("PASS user          USER \"app\" is uid 10001"),
        "{out}"
    );
    assert!(out.contains("2 env value(s) are references"), "{out}");
    assert!(out.contains("start_period 90s covers"), "{out}");
    let layout = dir.path().join("oci");
    oci_layout(&good_image(), &layout);
    let (code, out) = check(&layout, &["--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["passed"], true);
    // The same layout as one tarball (`docker buildx --output type=oci`).
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all(".", &layout).unwrap();
    let oci_tarball = dir.path().join("oci.tar");
    std::fs::write(&oci_tarball, builder.into_inner().unwrap()).unwrap();
    let (code, out) = check(&oci_tarball, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("PASS vinit-binary  /sbin/vinit: static, root-owned, mode 0755"),
        "{out}"
    );
}

#[test]
fn a_bad_image_fails_naming_each_layer_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = saved(&bad_image(), dir.path(), "bad.tar");
    let (code, out) = check(&tarball, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL user          USER \"root\" is root (uid 0)"),
        "{out}"
    );
    assert!(
        out.contains("ENV DB_PASSWORD looks secret but holds a resolved value (16 bytes)"),
        "{out}"
    );
    assert!(
        out.contains(
            "/root/.vault-token holds a credential file (42 bytes) (deleted or replaced in a later layer"
        ),
        "{out}"
    );
    assert!(
        out.contains("layer 1 (000000000000), history step 1: RUN vault login"),
        "{out}"
    );
    assert!(
        out.contains("LABEL build.token holds a Vault/OpenBao token"),
        "{out}"
    );
    assert!(out.contains("mode 4777 is writable by group or others"), "{out}");
    assert!(out.contains("mode 4777 is set-uid or set-gid"), "{out}");
    assert!(out.contains("history step 3: COPY vinit /sbin/vinit"), "{out}");
    assert!(
        out.contains("start_period 10s is shorter than vinit's start-up deadline 60s"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "a value was printed: {out}");
    assert!(!out.contains("hvs.CAES"), "a token was printed: {out}");
}

#[test]
fn known_values_are_found_everywhere_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = saved(&bad_image(), dir.path(), "bad.tar");
    let seed = dir.path().join("seed.toml");
    std::fs::write(
        &seed,
        format!("[secrets.\"secret/app\".data]\ndb_password = \"{CANARY}\"\n"),
    )
    .unwrap();
    let values = dir.path().join("values");
    std::fs::write(&values, "hunter2-resolved\n").unwrap();
    let (code, out) = check(
        &tarball,
        &[
            "--seed",
            seed.to_str().unwrap(),
            "--values-file",
            values.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("seed:secrets.secret/app.data.db_password found in the content of /etc/app.conf"),
        "{out}"
    );
    assert!(out.contains("values:1 found in config.Env[DB_PASSWORD]"), "{out}");
    assert!(out.contains("values:1 found in history step 4"), "{out}");
    assert!(
        !out.contains(CANARY) && !out.contains("hunter2"),
        "a value was printed: {out}"
    );
    // The good image holds none of them.
    let good = saved(&good_image(), dir.path(), "good.tar");
    let (code, out) = check(&good, &["--seed", seed.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("PASS known-values  none of 1 known value(s)"),
        "{out}"
    );
}

#[test]
fn junit_and_sarif_carry_the_failures() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = saved(&bad_image(), dir.path(), "bad.tar");
    let (code, junit) = check(&tarball, &["--format", "junit"]);
    assert_eq!(code, 1);
    assert!(junit.starts_with("<?xml"), "{junit}");
    assert!(junit.contains("<failure message=\"user failed\">"), "{junit}");
    assert!(
        junit.contains("name=\"entrypoint: vinit is ENTRYPOINT[0], in exec form\"><system-out>"),
        "{junit}"
    );
    let (_, sarif) = check(&tarball, &["--format", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results
        .iter()
        .any(|r| r["ruleId"] == "credentials" && r["level"] == "error"));
    assert!(results.iter().all(|r| r["ruleId"] != "entrypoint"));
}

#[test]
fn writes_a_structure_test_fragment_and_dockle_keys() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = saved(&good_image(), dir.path(), "good.tar");
    let cst = dir.path().join("cst.yaml");
    let keys = dir.path().join("keys");
    let (code, _) = check(
        &tarball,
        &[
            "--structure-test",
            cst.to_str().unwrap(),
            "--dockle-accept-keys",
            keys.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    let cst = std::fs::read_to_string(cst).unwrap();
    assert!(cst.contains("entrypoint: [\"/sbin/vinit\", \"--\"]"), "{cst}");
    assert!(
        cst.contains("- key: \"DB_PASSWORD\"\n      value: \"vault:secret/data/app#db_password\""),
        "{cst}"
    );
    assert!(cst.contains("permissions: \"-rwxr-xr-x\""), "{cst}");
    assert_eq!(std::fs::read_to_string(keys).unwrap(), "DB_PASSWORD\n");
}

#[test]
fn shell_form_and_dynamic_vinit_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut layer = base_layer();
    layer[3] = Item::File("/sbin/vinit", static_elf(true), 0o755, 0);
    let shell = image(
        serde_json::json!({ "User": "10001", "Entrypoint": ["/bin/sh", "-c", "/sbin/vinit -- app"] }),
        vec![("COPY rootfs /", Some(layer))],
    );
    let (code, out) = check(&saved(&shell, dir.path(), "shell.tar"), &[]);
    assert_eq!(code, 1);
    assert!(out.contains("is shell form"), "{out}");
    let mut layer = base_layer();
    layer[3] = Item::File("/sbin/vinit", static_elf(true), 0o755, 0);
    let dynamic = image(
        serde_json::json!({ "User": "10001", "Entrypoint": ["/sbin/vinit", "--"] }),
        vec![("COPY rootfs /", Some(layer))],
    );
    let (code, out) = check(&saved(&dynamic, dir.path(), "dynamic.tar"), &[]);
    assert_eq!(code, 1);
    assert!(out.contains("/sbin/vinit is dynamically linked"), "{out}");
    assert!(
        out.contains("PASS user          USER \"10001\" is uid 10001"),
        "{out}"
    );
}

#[test]
fn unreadable_images_and_bad_flags_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, layer_tar(&[Item::File("/x", b"y".to_vec(), 0o644, 0)])).unwrap();
    let output = Command::new(BAKERY).args(["check"]).arg(&junk).output().unwrap();
    assert_eq!(output.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&output.stderr).contains("neither a docker-save tarball"));
    let output = Command::new(BAKERY)
        .args(["check", "--format", "xml", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
}
