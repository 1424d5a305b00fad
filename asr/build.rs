//! Records where oneDNN's shared library is in this crate's binaries and tests
//! (`onednn/rpath.rs`).

include!("../onednn/rpath.rs");

fn main() {
    link_rpath_to_onednn();
}
