//! Rebuilds when a migration is added: `embed_migrations!` reads the
//! `migrations` directories at compile time, but cargo only watches the
//! files it was told about, so a new migration directory alone would not
//! trigger a rebuild and the binary would run without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
