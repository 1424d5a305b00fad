//! Nothing to call: this crate exists for its build script, which tells ct2rs where the
//! prebuilt oneDNN is (see `build.rs` and this crate's `Cargo.toml`).
