//! Guards the server against malformed input frames.
//!
//! tower-lsp-server's transport stops reading after the first frame whose
//! body is not a JSON-RPC message (its framed reader ends on a decode
//! error), so one bad frame would end the session. [`guard`] sits between
//! the client's stream and the transport: well-formed frames pass through
//! unchanged; a frame whose headers or body cannot be read as JSON becomes
//! a `weft/malformedMessage` notification carrying the reason, which the
//! server logs and reports with `window/logMessage`.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};

/// The notification a malformed frame is replaced with.
pub const MALFORMED: &str = "weft/malformedMessage";

/// Frames larger than this are refused (and skipped) rather than buffered.
const MAX_FRAME: usize = 64 << 20;

/// Returns a stream carrying `input`'s frames, with each malformed frame
/// replaced by a [`MALFORMED`] notification. Reading runs on a task of the
/// current runtime and ends with `input`.
pub fn guard<I>(input: I) -> DuplexStream
where
    I: AsyncRead + Unpin + Send + 'static,
{
    let (reader, mut writer) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut input = BufReader::new(input);
        loop {
            let frame = match read_frame(&mut input).await {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!("reading the client's stream failed: {err}");
                    break;
                }
            };
            let mut last = false;
            let body = match frame {
                Frame::Body(body) => match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(message)) => {
                        // Nothing is read after `exit`: a pending read of
                        // stdin would keep the process from ending.
                        last = message.get("method").and_then(Value::as_str) == Some("exit");
                        body
                    }
                    Ok(other) => malformed(&format!("the message is not a JSON object: {}", kind_of(&other))),
                    Err(err) => malformed(&format!("the message is not valid JSON: {err}")),
                },
                Frame::Malformed(reason) => malformed(&reason),
            };
            let header = format!("Content-Length: {}\r\n\r\n", body.len());
            if writer.write_all(header.as_bytes()).await.is_err() || writer.write_all(&body).await.is_err() || last {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    reader
}

enum Frame {
    Body(Vec<u8>),
    Malformed(String),
}

/// Reads one frame: headers up to an empty line, then `Content-Length`
/// bytes. `None` at the end of the stream.
async fn read_frame(input: &mut BufReader<impl AsyncRead + Unpin>) -> std::io::Result<Option<Frame>> {
    let mut length: Option<Result<usize, String>> = None;
    let mut saw_header = false;
    loop {
        let mut line = String::new();
        if input.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if saw_header {
                break;
            }
            continue;
        }
        saw_header = true;
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse().map_err(|_| format!("bad Content-Length {:?}", value.trim())));
        }
    }
    let length = match length {
        Some(Ok(length)) if length <= MAX_FRAME => length,
        Some(Ok(length)) => {
            tokio::io::copy(&mut input.take(length as u64), &mut tokio::io::sink()).await?;
            return Ok(Some(Frame::Malformed(format!("a frame of {length} bytes exceeds the limit of {MAX_FRAME}"))));
        }
        Some(Err(reason)) => return Ok(Some(Frame::Malformed(reason))),
        None => return Ok(Some(Frame::Malformed("a frame without Content-Length".to_owned()))),
    };
    let mut body = vec![0; length];
    input.read_exact(&mut body).await?;
    Ok(Some(Frame::Body(body)))
}

fn malformed(reason: &str) -> Vec<u8> {
    let message = json!({ "jsonrpc": "2.0", "method": MALFORMED, "params": { "reason": reason } });
    serde_json::to_vec(&message).expect("a JSON value serializes")
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array (batches are not part of LSP)",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(input: &'static [u8]) -> String {
        let mut out = String::new();
        guard(input).read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn good_frames_pass_unchanged() {
        let input = b"Content-Length: 2\r\n\r\n{}Content-Type: x\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(run(input).await, "Content-Length: 2\r\n\r\n{}Content-Length: 7\r\n\r\n{\"a\":1}");
    }

    #[tokio::test]
    async fn a_bad_body_becomes_a_notification_and_reading_goes_on() {
        let out =
            run(b"Content-Length: 9\r\n\r\n{not jsonContent-Length: 2\r\n\r\n[]Content-Length: 2\r\n\r\n{}").await;
        let bodies: Vec<&str> = out.split("\r\n\r\n").skip(1).collect();
        assert!(bodies[0].contains("weft/malformedMessage") && bodies[0].contains("not valid JSON"), "{out}");
        assert!(bodies[1].contains("an array"), "{out}");
        assert!(bodies[2].ends_with("{}"), "{out}");
    }

    #[tokio::test]
    async fn nothing_is_read_after_exit() {
        let exit = "Content-Length: 33\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}";
        let input: &'static [u8] =
            b"Content-Length: 33\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}Content-Length: 2\r\n\r\n{}";
        assert_eq!(run(input).await, exit);
    }

    #[tokio::test]
    async fn a_frame_without_length_is_reported() {
        let out = run(b"X-Nothing: 1\r\n\r\nContent-Length: 2\r\n\r\n{}").await;
        assert!(out.contains("without Content-Length"), "{out}");
        assert!(out.ends_with("Content-Length: 2\r\n\r\n{}"), "{out}");
    }
}
