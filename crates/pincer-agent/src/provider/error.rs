//! Why a model call failed, in OpenClaw's failover vocabulary, and the one table that maps HTTP
//! statuses and provider error bodies onto it.

use reqwest::header::HeaderMap;

/// The class of a failed model call, stored on runs as OpenClaw's snake_case reason strings;
/// defined with the other states in `pincer_protocol::state`.
pub use pincer_protocol::state::ErrorClass;

/// A failed model call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} [{class}]")]
pub struct ProviderError {
    pub class: ErrorClass,
    /// What happened, and where it helps, what to fix.
    pub message: String,
    /// The HTTP status, when the provider answered with one.
    pub status: Option<u16>,
    /// How long the provider asked us to wait (`retry-after-ms` / `retry-after`).
    pub retry_after_ms: Option<u64>,
    /// True once any text reached `on_delta`: the call must not be retried or sent elsewhere,
    /// or the listener would see the answer twice.
    pub first_token_received: bool,
}

impl ProviderError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> ProviderError {
        ProviderError {
            class,
            message: message.into(),
            status: None,
            retry_after_ms: None,
            first_token_received: false,
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> ProviderError {
        self.status = Some(status);
        self
    }

    pub(crate) fn after_first_token(mut self, received: bool) -> ProviderError {
        self.first_token_received |= received;
        self
    }
}

/// Classifies a provider's error from its HTTP status (if any), its machine-readable kind
/// (OpenAI `error.code`/`error.type`, Anthropic `error.type`) and its message.
pub fn classify(status: Option<u16>, kind: &str, message: &str) -> ErrorClass {
    let kind = kind.to_ascii_lowercase();
    let text = message.to_ascii_lowercase();
    let client_error = matches!(status, None | Some(400..=499)) && status != Some(429);
    if client_error && is_context_overflow(&kind, &text) {
        return ErrorClass::ContextOverflow;
    }
    if status == Some(402) || is_billing(&kind, &text) {
        return ErrorClass::Billing;
    }
    if matches!(status, None | Some(400) | Some(404) | Some(422))
        && (kind.contains("model_not_found") || kind == "not_found_error" || mentions_missing_model(&text))
    {
        return ErrorClass::ModelNotFound;
    }
    match status {
        Some(401) => ErrorClass::Auth,
        Some(403) => ErrorClass::AuthPermanent,
        Some(404) => ErrorClass::ModelNotFound,
        Some(408) => ErrorClass::Timeout,
        Some(413) => ErrorClass::ContextOverflow,
        Some(429) => ErrorClass::RateLimit,
        Some(503) | Some(529) => ErrorClass::Overloaded,
        Some(500..=599) if kind == "overloaded_error" => ErrorClass::Overloaded,
        Some(500..=599) => ErrorClass::ServerError,
        Some(400) | Some(422) => ErrorClass::Format,
        Some(_) => ErrorClass::Unknown,
        None => match kind.as_str() {
            "authentication_error" | "invalid_api_key" => ErrorClass::Auth,
            "permission_error" => ErrorClass::AuthPermanent,
            "rate_limit_error" | "rate_limit_exceeded" => ErrorClass::RateLimit,
            "overloaded_error" => ErrorClass::Overloaded,
            "api_error" | "server_error" | "internal_server_error" => ErrorClass::ServerError,
            "timeout_error" => ErrorClass::Timeout,
            "request_too_large" => ErrorClass::ContextOverflow,
            "invalid_request_error" => ErrorClass::Format,
            _ => ErrorClass::Unknown,
        },
    }
}

fn is_context_overflow(kind: &str, text: &str) -> bool {
    kind.contains("context_length_exceeded")
        || kind.contains("exceed_context_size")
        || kind == "request_too_large"
        || [
            "prompt is too long",
            "maximum context length",
            "context length exceeded",
            "context_length_exceeded",
            "context window",
            "exceeds the context",
            "too many tokens",
        ]
        .iter()
        .any(|needle| text.contains(needle))
}

fn is_billing(kind: &str, text: &str) -> bool {
    kind.contains("insufficient_quota")
        || kind == "billing_error"
        || ["insufficient_quota", "credit balance", "insufficient credit", "exceeded your current quota", "billing"]
            .iter()
            .any(|needle| text.contains(needle))
}

/// "model `x` not found", "The model `x` does not exist", "model 'x' not found, try pulling it".
fn mentions_missing_model(text: &str) -> bool {
    let Some(at) = text.find("model") else { return false };
    let rest = &text[at..];
    rest.contains("not found") || rest.contains("does not exist") || rest.contains("not_found")
}

/// Builds the error for a non-2xx response from its status, headers and (possibly truncated)
/// body, reading OpenAI's `{error:{message,type,code}}`, Anthropic's
/// `{type:"error",error:{type,message}}`, Ollama's `{error:"…"}` and vLLM's `{object:"error",…}`.
pub(crate) fn from_http(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    hint: &dyn Fn(ErrorClass) -> String,
) -> ProviderError {
    let (kind, detail) = error_detail(body);
    let class = classify(Some(status), &kind, &detail);
    let detail = if detail.is_empty() { "(empty body)".to_string() } else { detail };
    let mut message = format!("HTTP {status}: {detail}");
    let hint = hint(class);
    if !hint.is_empty() {
        message.push_str(" — ");
        message.push_str(&hint);
    }
    let mut error = ProviderError::new(class, message).with_status(status);
    error.retry_after_ms = retry_after_ms(headers);
    error
}

/// The machine-readable kind and the human message of an error body; a non-JSON body becomes
/// the message (trimmed to a readable length).
pub(crate) fn error_detail(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return (String::new(), truncate(text.trim(), 300));
    };
    let error = value.get("error").unwrap_or(&value);
    if let Some(message) = error.as_str() {
        return (String::new(), truncate(message, 300));
    }
    let field = |name: &str| error.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let kind = [field("code"), field("type")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    (kind, truncate(&field("message"), 300))
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// `retry-after-ms` (OpenAI, milliseconds), else `retry-after` in seconds. An HTTP-date
/// `retry-after` is ignored and the normal backoff applies.
pub(crate) fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| *v >= 0.0);
    if let Some(ms) = number("retry-after-ms") {
        return Some(ms.ceil() as u64);
    }
    number("retry-after").map(|secs| (secs * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases: &[(Option<u16>, &str, &str, ErrorClass)] = &[
            (Some(401), "invalid_api_key", "Incorrect API key provided", ErrorClass::Auth),
            (Some(403), "permission_error", "not allowed", ErrorClass::AuthPermanent),
            (Some(402), "", "Payment required", ErrorClass::Billing),
            (Some(429), "insufficient_quota", "You exceeded your current quota", ErrorClass::Billing),
            (Some(400), "invalid_request_error", "Your credit balance is too low", ErrorClass::Billing),
            (Some(404), "model_not_found", "The model `gpt-9` does not exist", ErrorClass::ModelNotFound),
            (Some(404), "not_found_error", "model: claude-9", ErrorClass::ModelNotFound),
            (Some(404), "", "model \"llama9\" not found, try pulling it first", ErrorClass::ModelNotFound),
            (Some(400), "", "The model `x` does not exist.", ErrorClass::ModelNotFound),
            (Some(429), "rate_limit_exceeded", "Rate limit reached for requests", ErrorClass::RateLimit),
            (Some(429), "tokens", "Request too large for gpt-4o on tokens per min", ErrorClass::RateLimit),
            (Some(503), "", "Service Unavailable", ErrorClass::Overloaded),
            (Some(529), "overloaded_error", "Overloaded", ErrorClass::Overloaded),
            (Some(500), "api_error", "Internal server error", ErrorClass::ServerError),
            (Some(502), "", "Bad gateway", ErrorClass::ServerError),
            (
                Some(400),
                "context_length_exceeded",
                "This model's maximum context length is 8192",
                ErrorClass::ContextOverflow,
            ),
            (
                Some(400),
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum",
                ErrorClass::ContextOverflow,
            ),
            (
                Some(400),
                "exceed_context_size_error",
                "request exceeds the available context size",
                ErrorClass::ContextOverflow,
            ),
            (
                Some(413),
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes",
                ErrorClass::ContextOverflow,
            ),
            (Some(400), "invalid_request_error", "messages: field required", ErrorClass::Format),
            (Some(422), "", "unprocessable", ErrorClass::Format),
            (Some(408), "", "Request Timeout", ErrorClass::Timeout),
            (Some(409), "", "conflict", ErrorClass::Unknown),
            (None, "overloaded_error", "Overloaded", ErrorClass::Overloaded),
            (None, "api_error", "Internal server error", ErrorClass::ServerError),
            (None, "rate_limit_error", "slow down", ErrorClass::RateLimit),
            (None, "invalid_request_error", "prompt is too long", ErrorClass::ContextOverflow),
            (None, "something_new", "?", ErrorClass::Unknown),
        ];
        for (status, kind, message, want) in cases {
            assert_eq!(classify(*status, kind, message), *want, "{status:?} {kind} {message}");
        }
    }

    #[test]
    fn transient_and_fallback_sets() {
        let transient: Vec<_> =
            ErrorClass::ALL.iter().copied().filter(|c| c.is_transient()).map(ErrorClass::as_str).collect();
        assert_eq!(transient, ["rate_limit", "overloaded", "timeout", "server_error", "network"]);
        let no_fallback: Vec<_> =
            ErrorClass::ALL.iter().copied().filter(|c| !c.allows_fallback()).map(ErrorClass::as_str).collect();
        assert_eq!(no_fallback, ["context_overflow", "format", "unknown"]);
    }

    #[test]
    fn serde_names_match_as_str() {
        for class in ErrorClass::ALL {
            assert_eq!(serde_json::to_value(class).unwrap(), class.as_str());
            assert_eq!(serde_json::from_value::<ErrorClass>(class.as_str().into()).unwrap(), *class);
        }
    }

    #[test]
    fn error_bodies_of_each_platform() {
        let openai = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(error_detail(openai), ("rate_limit_exceeded requests".into(), "Rate limit reached".into()));
        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(error_detail(anthropic), ("overloaded_error".into(), "Overloaded".into()));
        let ollama = br#"{"error":"model 'x' not found"}"#;
        assert_eq!(error_detail(ollama), (String::new(), "model 'x' not found".into()));
        let vllm = br#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","code":404}"#;
        assert_eq!(error_detail(vllm), ("NotFoundError".into(), "The model `x` does not exist.".into()));
        assert_eq!(
            error_detail(b"<html>502 Bad Gateway</html>\n"),
            (String::new(), "<html>502 Bad Gateway</html>".into())
        );
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after_ms(&headers), None);
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after_ms(&headers), Some(7_000));
        headers.insert("retry-after-ms", "1500.5".parse().unwrap());
        assert_eq!(retry_after_ms(&headers), Some(1_501));
        headers.remove("retry-after-ms");
        headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after_ms(&headers), None);
    }
}
