//! `cargo run -p koreo-kube-schemas`: rewrites the bundled schemas (see the library).

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::write(
        root.join(koreo_kube_schemas::BUNDLE),
        koreo_kube_schemas::bundle_text(),
    )?;
    eprintln!(
        "wrote {} (Kubernetes {})",
        koreo_kube_schemas::BUNDLE,
        koreo_kube_schemas::kubernetes_version()
    );
    Ok(())
}
