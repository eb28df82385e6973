//! `cargo xtask dist`: the Lambda deployment package.
//!
//! Builds `bootstrap` with the `dist` profile (release with fat LTO and one
//! codegen unit, stripped), checks
//! it runs on Amazon Linux 2023 (glibc 2.34: no symbol may need a newer
//! version), and zips it as `target/lambda/resize-lambda/bootstrap.zip`
//! with the executable bit set, the layout `provided.al2023` expects.
//! A libjpeg built without its SIMD code (no nasm) stops the build here.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// glibc of Amazon Linux 2023, the `provided.al2023` runtime.
const MAX_GLIBC: (u32, u32) = (2, 34);

pub fn run(root: &Path) -> Result<()> {
    let status = crate::cargo()
        .args([
            "build",
            "--profile",
            "dist",
            "--locked",
            "-p",
            "resize-lambda",
            "--bin",
            "bootstrap",
        ])
        // The package that ships must have libjpeg's SIMD code: resize-core's
        // build script only warns for other builds (cargo says
        // `PROFILE=release` for this profile too, so it cannot tell).
        .env("RESIZE_REQUIRE_SIMD_JPEG", "1")
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build exited with {status}");
    }
    let binary = root.join("target/dist/bootstrap");
    let needed = glibc_versions(&binary)?;
    let newest = needed.iter().max().copied().unwrap_or((0, 0));
    eprintln!(
        "bootstrap needs glibc {}.{} at most (limit {}.{})",
        newest.0, newest.1, MAX_GLIBC.0, MAX_GLIBC.1
    );
    if newest > MAX_GLIBC {
        bail!(
            "bootstrap needs glibc {}.{}, newer than provided.al2023's {}.{}: build on an older \
             system or with cargo-lambda (zig), see README",
            newest.0,
            newest.1,
            MAX_GLIBC.0,
            MAX_GLIBC.1
        );
    }
    let out_dir = root.join("target/lambda/resize-lambda");
    fs::create_dir_all(&out_dir)?;
    let zip_path = out_dir.join("bootstrap.zip");
    let bytes = fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
    let file = fs::File::create(&zip_path).with_context(|| format!("creating {}", zip_path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)?;
    zip.write_all(&bytes)?;
    zip.finish()?;
    eprintln!(
        "wrote {} ({} KiB; bootstrap {} KiB)",
        zip_path.display(),
        fs::metadata(&zip_path)?.len() / 1024,
        bytes.len() / 1024
    );
    Ok(())
}

/// The glibc symbol versions a binary needs, from `objdump -T`.
fn glibc_versions(binary: &Path) -> Result<Vec<(u32, u32)>> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .context("running objdump (binutils) to read the binary's symbol versions")?;
    if !out.status.success() {
        bail!("objdump -T failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').filter_map(|p| p.parse::<u32>().ok());
            Some((parts.next()?, parts.next().unwrap_or(0)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_limit_is_al2023() {
        assert!((2, 35) > super::MAX_GLIBC);
        assert!((2, 34) <= super::MAX_GLIBC);
        assert!((2, 17) <= super::MAX_GLIBC);
    }
}
