//! Generates the NRI messages and the async ttrpc services from `proto/nri.proto`
//! (pure Rust: ttrpc-codegen parses the file itself, no `protoc`).
//!
//! The generated files open with inner attributes (`#![allow(...)]`, `//!`), which
//! `include!` refuses; they are rewritten without them and `src/api.rs` puts the same
//! allowances on the modules that include them.

use std::{fs, path::Path};

use ttrpc_codegen::{Codegen, Customize, ProtobufCustomize};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=proto/nri.proto");
    let out = std::env::var("OUT_DIR")?;
    Codegen::new()
        .out_dir(&out)
        .input("proto/nri.proto")
        .include("proto")
        .rust_protobuf()
        .customize(Customize {
            async_all: true,
            ..Default::default()
        })
        .rust_protobuf_customize(ProtobufCustomize::default().gen_mod_rs(false))
        .run()?;
    for name in ["nri", "nri_ttrpc"] {
        let generated = Path::new(&out).join(format!("{name}.rs"));
        let text = fs::read_to_string(&generated)?;
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("#![") && !l.starts_with("//!"))
            .flat_map(|l| [l, "\n"])
            .collect();
        fs::write(Path::new(&out).join(format!("{name}.include.rs")), kept)?;
    }
    Ok(())
}
