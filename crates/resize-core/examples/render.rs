//! Bytes in, renditions out: `cargo run -p resize-core --example render -- photo.jpg out/`.
//!
//! The core does no I/O; this example reads and writes the files itself,
//! as any embedding program would.

use std::error::Error;
use std::path::PathBuf;

use resize_core::Recipe;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(input), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: render <image> <out-dir>");
        std::process::exit(2);
    };
    let input = PathBuf::from(input);
    let out = PathBuf::from(out);
    let bytes = std::fs::read(&input)?;
    // Settings come from the environment (SIZES, FORMATS, ...), defaults otherwise.
    let recipe = Recipe::from_lookup(|name| std::env::var(name).ok())?;
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("file name is not UTF-8")?;
    let source = recipe
        .source_key(name)
        .map_err(|skip| format!("{name}: {skip}"))?;
    std::fs::create_dir_all(&out)?;
    for r in resize_core::render(&bytes, &recipe)? {
        let key = source.output_key(r.width, r.height, r.format)?;
        std::fs::write(out.join(&key), &r.bytes)?;
        println!("{key}\t{}x{}\t{} bytes", r.width, r.height, r.bytes.len());
    }
    Ok(())
}
