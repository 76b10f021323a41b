//! Writes an rpath to libtorch into the `nasfleet` binary (the directory comes
//! from nasfleet-torch's build script), so it runs without LD_LIBRARY_PATH.
fn main() {
    if let Ok(lib) = std::env::var("DEP_NASFLEET_TORCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
