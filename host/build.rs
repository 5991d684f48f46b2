// embed_migrations! reads host/migrations at compile time; without this a new
// migration directory would not trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
