//! The one WebSocket client connector: Slack's Socket Mode, the Discord gateway and the `pincer`
//! CLI open their sockets here. tokio-tungstenite over TCP; `wss://` (and `https://`) through
//! tokio-rustls with rustls-platform-verifier — the OS's trust store, as reqwest uses — so the
//! workspace has one TLS stack and one set of roots.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, http::Uri};

/// Anything a socket runs over: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// An open client WebSocket.
pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Where `uri` connects: host, port, and whether over TLS.
fn target(uri: &Uri) -> Result<(String, u16, bool), Error> {
    let tls = match uri.scheme_str() {
        Some("wss" | "https") => true,
        Some("ws" | "http") => false,
        _ => return Err(Error::Url(UrlError::UnsupportedUrlScheme)),
    };
    let host = uri.host().filter(|h| !h.is_empty()).ok_or(Error::Url(UrlError::NoHostName))?;
    // An IPv6 literal comes bracketed in the URI; the resolver wants it bare.
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    Ok((host, uri.port_u16().unwrap_or(if tls { 443 } else { 80 }), tls))
}

/// Connects to `request`'s URL (`ws://`, `wss://`, `http://`, `https://`) and runs the WebSocket
/// handshake. TCP and TLS failures come back as [`Error::Io`] naming the host; a refused upgrade
/// as [`Error::Http`], as from `tokio_tungstenite::connect_async`.
pub async fn connect(
    request: impl IntoClientRequest,
    config: Option<WebSocketConfig>,
) -> Result<(Socket, Response), Error> {
    let request = request.into_client_request()?;
    let (host, port, tls) = target(request.uri())?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot connect to {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = if tls {
        pincer_core::tls::install_default_provider();
        use rustls_platform_verifier::ConfigVerifierExt;
        let tls_error = |e: String| std::io::Error::other(format!("TLS with {host}: {e}"));
        let client = rustls::ClientConfig::with_platform_verifier().map_err(|e| tls_error(e.to_string()))?;
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| tls_error(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("TLS with {host}: {e}")))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    tokio_tungstenite::client_async_with_config(request, stream, config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_says_whether_tls_and_the_default_port() {
        let t = |u: &str| target(&u.parse::<Uri>().unwrap()).map_err(|e| e.to_string());
        assert_eq!(t("wss://gateway.discord.gg/?v=10"), Ok(("gateway.discord.gg".into(), 443, true)));
        assert_eq!(t("ws://127.0.0.1:9000/x"), Ok(("127.0.0.1".into(), 9000, false)));
        assert_eq!(t("https://[::1]:8443/"), Ok(("::1".into(), 8443, true)));
        assert_eq!(t("http://h/"), Ok(("h".into(), 80, false)));
        assert!(t("ftp://h/").unwrap_err().contains("scheme"), "{:?}", t("ftp://h/"));
    }

    #[tokio::test]
    async fn wss_goes_through_tls_and_names_the_host_when_it_fails() {
        // A plain TCP listener: the TLS handshake fails, which shows wss:// was attempted with TLS.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let error = connect(format!("wss://localhost:{port}/"), None).await.err().unwrap().to_string();
        assert!(error.contains("TLS with localhost"), "{error}");
    }
}
