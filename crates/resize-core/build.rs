//! Says loudly when libjpeg was built without SIMD, and refuses it for the
//! Lambda package. mozjpeg-sys builds its x86 SIMD code with nasm and, when
//! nasm is missing, quietly falls back to plain C (libjpeg-turbo's speed is
//! its SIMD code). A first build on a new machine should work wherever Rust
//! and a C compiler do, so a local build gets a warning on every build; the
//! package that ships (`cargo xtask dist`, which sets
//! `RESIZE_REQUIRE_SIMD_JPEG=1`: cargo reports `PROFILE=release` for every
//! profile, so the profile cannot tell) stops instead. On arm64 the NEON
//! code needs no nasm. Scalar and SIMD libjpeg give the same bytes (the
//! SIMD kernels are bit-exact with the C ones for the integer DCT, colour
//! conversion and upsampling we use): only the speed differs.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_JPEG_INCLUDE");
    println!("cargo:rerun-if-env-changed=RESIZE_REQUIRE_SIMD_JPEG");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !matches!(arch.as_str(), "x86_64" | "x86" | "aarch64") {
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
    if config.contains("#define WITH_SIMD 1") {
        return;
    }
    let required = env::var_os("RESIZE_REQUIRE_SIMD_JPEG").is_some_and(|v| v != "0");
    // mozjpeg-sys's build script never reruns on its own when nasm appears
    // later (it watches only its vendored sources), so the advice must say
    // how to make it. Cargo replays these warnings on later builds without
    // rerunning this script, so they must hold whether nasm is there now.
    let how = "install nasm (Debian: apt-get install nasm; macOS: brew install nasm), then run \
               `cargo clean -p mozjpeg-sys` (libjpeg's build does not rerun by itself when nasm appears) and build again";
    if required {
        panic!(
            "libjpeg (mozjpeg-sys) was built without its SIMD code, and the Lambda package must have it \
             (JPEG decoding and encoding take about 2-3 times as long in plain C): {how}"
        );
    }
    for line in [
        "libjpeg (mozjpeg-sys) was built WITHOUT its SIMD code (nasm missing): JPEG decoding and encoding take about 2-3 times as long."
            .to_owned(),
        format!("Images come out the same, only slower. To get the speed: {how}."),
        "`cargo xtask dist` (the Lambda package) refuses such a build.".to_owned(),
    ] {
        println!("cargo:warning={line}");
    }
}
