//! Hands ct2rs's build script the prebuilt oneDNN (`DEP_DNNL_INCLUDE_PATH`,
//! `DEP_DNNL_LIBRARY_PATH`, as crates.io's onednn-src does after building it) and links it.

include!("rpath.rs");

fn main() {
    let lib = onednn_lib_dir().unwrap_or_else(|e| panic!("{e}"));
    let root = lib.parent().expect("lib has a parent").to_path_buf();
    let include = root.join("include");
    for needed in [
        lib.join("libdnnl.so.3"),
        include.join("oneapi/dnnl/dnnl.hpp"),
    ] {
        assert!(
            needed.exists(),
            "{} is missing: scripts/tools.sh unpacks oneDNN",
            needed.display()
        );
    }
    println!(
        "cargo::rerun-if-changed={}",
        lib.join("libdnnl.so.3").display()
    );
    println!("cargo::rustc-link-search=native={}", lib.display());
    println!("cargo::rustc-link-lib=dylib=dnnl");
    println!("cargo::metadata=ROOT={}", root.display());
    println!("cargo::metadata=INCLUDE_PATH={}", include.display());
    println!("cargo::metadata=LIBRARY_PATH={}", lib.display());
}
