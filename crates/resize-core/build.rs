//! Refuses a libjpeg without SIMD. mozjpeg-sys builds its x86 SIMD code
//! with nasm and, when nasm is missing, silently falls back to plain C
//! (libjpeg-turbo's speed is its SIMD code): a quiet regression nobody
//! would notice until the bill. On arm64 the NEON code needs no nasm.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_JPEG_INCLUDE");
    println!("cargo:rerun-if-env-changed=RESIZE_ALLOW_SCALAR_JPEG");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !matches!(arch.as_str(), "x86_64" | "x86" | "aarch64") {
        return;
    }
    // An escape hatch for a one-off build on a machine without nasm.
    if env::var_os("RESIZE_ALLOW_SCALAR_JPEG").is_some() {
        println!("cargo:warning=RESIZE_ALLOW_SCALAR_JPEG is set: libjpeg may be built without SIMD");
        return;
    }
    let include = env::var_os("DEP_JPEG_INCLUDE").unwrap_or_default();
    let jconfig = env::split_paths(&include)
        .map(|dir: PathBuf| dir.join("jconfig.h"))
        .find(|path| path.is_file());
    let Some(jconfig) = jconfig else {
        panic!("mozjpeg-sys did not say where its jconfig.h is (DEP_JPEG_INCLUDE); cannot check its SIMD");
    };
    let config = std::fs::read_to_string(&jconfig).unwrap_or_default();
    if !config.contains("#define WITH_SIMD 1") {
        panic!(
            "libjpeg (mozjpeg-sys) was built without SIMD, so JPEG would be much slower (libjpeg-turbo's speed is its SIMD code). \
             On x86-64 it needs nasm: install it (Debian: apt-get install nasm; macOS: brew install nasm) \
             and rebuild (cargo clean -p mozjpeg-sys). To build without SIMD anyway, set RESIZE_ALLOW_SCALAR_JPEG=1."
        );
    }
}
