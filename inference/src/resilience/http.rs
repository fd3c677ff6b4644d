//! HTTP outcomes as [`AttemptError`]s: which statuses and transport errors
//! are worth retrying, and the `Retry-After` header.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::AttemptError;

/// Sends `request` (a JSON POST) and returns the JSON body of a 2xx answer.
pub async fn send_json(request: reqwest::RequestBuilder) -> Result<serde_json::Value, AttemptError> {
    let response = request.send().await.map_err(|err| transport_error(&err))?;
    let status = response.status();
    if !status.is_success() {
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        return Err(status_error(status, &headers, &body));
    }
    let body = response.bytes().await.map_err(|err| transport_error(&err))?;
    serde_json::from_slice(&body).map_err(|err| {
        AttemptError::Permanent(format!("the answer is not JSON ({err}): {}", excerpt(&String::from_utf8_lossy(&body))))
    })
}

/// A non-2xx answer: 408, 429 and 5xx (529 "overloaded" included) are
/// transient; any other status is permanent.
pub fn status_error(status: StatusCode, headers: &HeaderMap, body: &str) -> AttemptError {
    let message = format!("HTTP {}: {}", status.as_u16(), excerpt(&error_message(body)));
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        AttemptError::Transient { message, retry_after: retry_after(headers) }
    } else {
        AttemptError::Permanent(message)
    }
}

/// Timeouts and connection failures are transient; anything else (a body
/// that cannot be built, a redirect loop) is permanent.
pub fn transport_error(err: &reqwest::Error) -> AttemptError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if err.is_timeout() {
        AttemptError::transient(format!("timed out: {message}"))
    } else if err.is_connect() || err.is_request() || err.is_body() {
        AttemptError::transient(message)
    } else {
        AttemptError::Permanent(message)
    }
}

/// `Retry-After` in seconds. (The HTTP-date form is not used by the
/// providers Weft talks to; it falls back to the policy's backoff.)
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// The message of an OpenAI- or Anthropic-style error body
/// (`{"error": {"message": …}}`), else the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}

/// At most 300 characters of `text`, for error messages.
fn excerpt(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn statuses_are_classified() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let body = r#"{"error": {"message": "Rate limit reached", "type": "requests"}}"#;
        assert_eq!(
            status_error(StatusCode::TOO_MANY_REQUESTS, &headers, body),
            AttemptError::Transient {
                message: "HTTP 429: Rate limit reached".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(
            status_error(StatusCode::from_u16(529).unwrap(), &HeaderMap::new(), "overloaded"),
            AttemptError::Transient { retry_after: None, .. }
        ));
        assert_eq!(
            status_error(StatusCode::UNAUTHORIZED, &HeaderMap::new(), "no key\n"),
            AttemptError::Permanent("HTTP 401: no key".into())
        );
        let long = "x".repeat(1000);
        let AttemptError::Permanent(message) = status_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), &long) else {
            panic!()
        };
        assert_eq!(message.chars().count(), "HTTP 400: ".len() + 301);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let header = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_static(v));
            retry_after(&headers)
        };
        assert_eq!(header("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(header("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(header("-1"), None);
    }
}
