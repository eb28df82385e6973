//! The Python tools the tests and checks need, in a virtualenv at
//! `.venv/`: moto's S3 server (the Lambda tests start it on loopback),
//! cfn-lint (checks `template.yaml`) and jsonschema (the tests validate
//! manifests against `fixtures/manifest.schema.json`). Created when
//! missing, completed when one is missing, reused after.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Pinned to the major versions the tests were written against.
const PACKAGES: &[&str] = &["moto[server]>=5.1,<6", "cfn-lint>=1.40,<2", "jsonschema>=4.20,<5"];

/// The virtualenv's `bin/` directory, with moto, cfn-lint and jsonschema
/// installed.
pub fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    let bin = venv.join("bin");
    if bin.join("moto_server").exists() && bin.join("cfn-lint").exists() && importable(&bin, "jsonschema") {
        eprintln!("python tools present in {}", venv.display());
        return Ok(bin);
    }
    if !bin.join("pip").exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating the virtualenv (is python3 with venv installed?)")?;
    }
    run(Command::new(bin.join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES))
    .context("installing moto, cfn-lint and jsonschema from PyPI")?;
    Ok(bin)
}

/// Whether the virtualenv's python can import `module` (a library has no
/// executable to look for); `false` when there is no python to ask.
fn importable(bin: &Path, module: &str) -> bool {
    Command::new(bin.join("python"))
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `cfn-lint template.yaml`, then the least-privilege check of its IAM
/// policy (`xtask/template_policy.py`, which first proves it catches
/// broken copies).
pub fn template(root: &Path) -> Result<()> {
    let bin = ensure_venv(root)?;
    let template = root.join("template.yaml");
    run(Command::new(bin.join("cfn-lint")).arg(&template))?;
    run(Command::new(bin.join("python"))
        .arg(root.join("xtask/template_policy.py"))
        .arg("--self-test")
        .arg(&template))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}
