// Included by the build scripts of the crates whose binaries and tests link CTranslate2 (and so
// oneDNN, a shared library), and by onednn/build.rs.

/// The folder holding libdnnl.so.3: `$ONEDNN_ROOT/lib` (`.cargo/config.toml` sets ONEDNN_ROOT
/// to the checkout's `.cache/onednn`, which scripts/tools.sh links to its cache), resolved
/// through links so a binary does not depend on the checkout it was built in.
fn onednn_lib_dir() -> Result<std::path::PathBuf, String> {
    println!("cargo::rerun-if-env-changed=ONEDNN_ROOT");
    let root = std::env::var_os("ONEDNN_ROOT")
        .ok_or("ONEDNN_ROOT is unset (.cargo/config.toml sets it)")?;
    let lib = std::path::Path::new(&root).join("lib");
    std::fs::canonicalize(&lib).map_err(|e| {
        format!(
            "oneDNN is not at {}: {e} (scripts/tools.sh unpacks it)",
            lib.display()
        )
    })
}

/// Records the folder of libdnnl.so.3 in this crate's binaries and tests, so they run from the
/// target folder without LD_LIBRARY_PATH, and exports the binaries' OpenMP entry points (Intel's
/// runtime, linked statically for MKL and CTranslate2) so that oneDNN's OpenMP calls, built
/// against GNU's libgomp, bind to them: one runtime and one thread pool in the process, sized by
/// CTranslate2's thread count. Without the export they bound to libgomp (seen with
/// `LD_DEBUG=bindings`), a second pool of threads on the same cores. Where oneDNN is not there
/// (a container build of a binary that does not link it, or one whose image installs the
/// library on the loader's path) no path is recorded; a binary that needs it then says so when
/// it starts.
#[allow(dead_code)]
fn link_rpath_to_onednn() {
    if let Ok(dir) = onednn_lib_dir() {
        println!("cargo::rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
    println!("cargo::rustc-link-arg=-Wl,--export-dynamic-symbol=GOMP_*");
    println!("cargo::rustc-link-arg=-Wl,--export-dynamic-symbol=omp_*");
}
