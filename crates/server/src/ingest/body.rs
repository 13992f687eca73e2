//! Reading a request body: size limits, gzip, and the key.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use base64::Engine;

use crate::error::ApiError;

/// Reads the whole body, decompressing gzip whatever the Content-Type says (RudderStack's Node
/// SDK sends gzip labelled application/x-www-form-urlencoded). Both the raw and the
/// decompressed body must fit in `limit` bytes. A plain body is returned as read (no copy).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
    }
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::InvalidRequest(format!("could not read the request body: {e}"))
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let is_gzip = raw.starts_with(&[0x1f, 0x8b]);
    match encoding.as_deref() {
        None | Some("") | Some("identity") | Some("gzip") | Some("x-gzip") => {}
        Some(other) => return Err(ApiError::UnsupportedEncoding(other.to_string())),
    }
    if !is_gzip {
        if matches!(encoding.as_deref(), Some("gzip") | Some("x-gzip")) {
            return Err(ApiError::InvalidRequest(
                "Content-Encoding says gzip but the body is not gzip data".into(),
            ));
        }
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ApiError::InvalidRequest(format!("the body is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(out.into())
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.to_string().contains("length limit") {
            return true;
        }
        source = e.source();
    }
    false
}

/// The username of HTTP Basic auth (Segment's write key travels there, password empty), or a
/// Bearer token.
pub fn auth_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let user = text.split(':').next().unwrap_or_default();
        return (!user.is_empty()).then(|| user.to_string());
    }
    value
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Explains why `bytes` is not a JSON body.
pub fn json_error(bytes: &[u8]) -> ApiError {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Err(e) => ApiError::InvalidRequest(format!("the body is not valid JSON: {e}")),
        Ok(_) => ApiError::InvalidRequest("the body is JSON but not the expected shape".into()),
    }
}
