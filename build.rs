//! Rebuilds when a migration changes: they are embedded in the binary at compile time.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
