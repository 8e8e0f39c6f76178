//! TLS for outbound HTTP: rustls with the `ring` provider, installed once per process.

/// Installs rustls' `ring` crypto provider as the process default (idempotent). Call before
/// building any `reqwest::Client`.
pub fn install_default_provider() {
    // Fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
