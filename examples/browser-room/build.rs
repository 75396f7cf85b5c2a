//! Bundles the page's script (`web/src/app.js` and mediasoup-client from npm) with esbuild, also
//! from npm, into `$OUT_DIR/app.js`, which the server embeds. `scripts/bootstrap` installs the npm
//! packages (`npm ci` from `web/package-lock.json`); no bundle is checked in.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = manifest.join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("app.js");
    for watched in ["web/src", "web/build.mjs", "web/package-lock.json"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    if !web.join("node_modules/esbuild").is_dir() || !web.join("node_modules/mediasoup-client").is_dir() {
        panic!(
            "the page's npm packages are missing in {}: run scripts/bootstrap (it runs `npm ci` there)",
            web.display()
        );
    }
    let status = Command::new("node")
        .current_dir(&web)
        .arg("build.mjs")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("could not run node to bundle the page (install Node.js): {e}"));
    assert!(status.success(), "bundling the page with esbuild failed: {status}");
}
