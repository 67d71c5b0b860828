//! Request extractors that turn bad input into the right problem: JSON bodies (415, 413, 400,
//! 422 naming the field) and query strings (422 naming the parameter).

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{AppError, FieldError};

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 1024 * 1024;

/// A JSON body of type `T`, read when the handler asks for it (`body.parse().await?`).
///
/// Lazy on purpose: actix polls all extractors of a handler together, so an eager body parser
/// could answer 400/415/422 before `Granted` has decided 401/403. Handlers take `Granted<_>`
/// first and parse the body after.
pub struct ApiJson<T> {
    req: HttpRequest,
    payload: Payload,
    _type: std::marker::PhantomData<T>,
}

impl<T> std::fmt::Debug for ApiJson<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiJson")
    }
}

impl<T: DeserializeOwned> ApiJson<T> {
    /// Checks the content type (415), the size (413), the syntax (400) and the fields (422).
    pub async fn parse(mut self) -> Result<T, AppError> {
        if !is_json(&self.req) {
            return Err(AppError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        let body = read_body(&self.req, &mut self.payload, JSON_LIMIT).await?;
        parse_json(&body)
    }
}

impl<T: 'static> FromRequest for ApiJson<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        std::future::ready(Ok(ApiJson {
            req: req.clone(),
            payload: payload.take(),
            _type: std::marker::PhantomData,
        }))
    }
}

pub(super) fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(mime) = value.to_str().unwrap_or("").parse::<mime::Mime>() else {
        return false;
    };
    mime.type_() == mime::APPLICATION
        && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
}

/// Reads the whole body, refusing more than `limit` bytes (by header, then by count).
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Result<Vec<u8>, AppError> {
    let too_large =
        || AppError::PayloadTooLarge(format!("the body is over the limit of {limit} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| AppError::BadRequest(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Deserialises JSON, telling syntax errors (400) from wrong fields (422 with the path).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    if has_nul_escape(body) {
        return Err(AppError::validation("body", crate::error::NUL_REFUSED));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                // serde stops at the first wrong value; a body that is not even JSON is a 400.
                if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    return AppError::BadRequest(format!("malformed JSON: {syntax}"));
                }
                let message = strip_position(&inner);
                let field = match missing_field(&message) {
                    Some(name) if path == "." => name.to_string(),
                    Some(name) => format!("{path}.{name}"),
                    // Not an object at all: the body as a whole is wrong.
                    None if path == "." || path.starts_with('[') => "body".to_string(),
                    None => path,
                };
                AppError::Validation(vec![FieldError::new(field, message)])
            }
            _ => AppError::BadRequest(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Whether a JSON text holds a `\u0000` escape (a NUL in a string; a raw NUL byte is not valid
/// JSON at all). PostgreSQL cannot store NUL in text and SQLite can: refused up front, the same
/// on both. `\\u0000` is an escaped backslash followed by text, not a NUL.
fn has_nul_escape(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' {
            if body[i + 1..].starts_with(b"u0000") {
                return true;
            }
            // Skip the escaped character, whatever it is.
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// serde reports a missing field at its parent's path; name the field itself.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

/// serde_json appends " at line L column C" to data errors; the field name says more.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Query-string parameters of type `T`, parsed when the handler asks (`query.parse()?`),
/// after authorisation, for the same reason as [`ApiJson`]. A bad one is a 422 naming it.
#[derive(Debug)]
pub struct ApiQuery<T> {
    raw: String,
    _type: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> ApiQuery<T> {
    pub fn parse(&self) -> Result<T, AppError> {
        let parser = url::form_urlencoded::parse(self.raw.as_bytes());
        if let Some((name, _)) = parser
            .clone()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let name = name.replace('\0', "");
            return Err(AppError::validation(
                if name.is_empty() {
                    "query"
                } else {
                    name.as_str()
                },
                crate::error::NUL_REFUSED,
            ));
        }
        let de = serde_urlencoded::Deserializer::new(parser);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "query".to_string()
            } else {
                path
            };
            AppError::Validation(vec![FieldError::new(field, e.into_inner().to_string())])
        })
    }
}

impl<T> FromRequest for ApiQuery<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(ApiQuery {
            raw: req.query_string().to_string(),
            _type: std::marker::PhantomData,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Probe {
        name: String,
        count: u32,
    }

    #[test]
    fn nul_characters_are_422_in_bodies_and_query_strings() {
        let nul = parse_json::<Probe>(br#"{"name": "a\u0000b", "count": 1}"#).expect_err("NUL");
        assert!(matches!(nul, AppError::Validation(_)), "{nul:?}");
        // An escaped backslash followed by "u0000" is text, not a NUL.
        let text = parse_json::<Probe>(br#"{"name": "a\\u0000b", "count": 1}"#).expect("text");
        assert_eq!(text.name, "a\\u0000b");
        assert!(parse_json::<Probe>(br#"{"name": "\\", "count": 1}"#).is_ok());
        // A lone backslash at the end is malformed JSON, not a panic.
        assert!(parse_json::<Probe>(b"{\"name\": \"\\").is_err());

        let query = |raw: &str| ApiQuery::<Probe> {
            raw: raw.into(),
            _type: std::marker::PhantomData,
        };
        match query("name=a%00b&count=1").parse() {
            Err(AppError::Validation(errors)) => assert_eq!(errors[0].field, "name"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            query("na%00me=a&count=1").parse(),
            Err(AppError::Validation(_))
        ));
        assert_eq!(query("name=a%20b&count=1").parse().expect("ok").name, "a b");
    }

    #[test]
    fn syntax_errors_are_400_and_data_errors_422_with_the_field() {
        let syntax = parse_json::<Probe>(b"{\"name\": ").expect_err("bad");
        assert!(matches!(syntax, AppError::BadRequest(_)));
        let data = parse_json::<Probe>(br#"{"name": "x", "count": "many"}"#).expect_err("bad");
        match data {
            AppError::Validation(errors) => assert_eq!(errors[0].field, "count"),
            other => panic!("expected 422, got {other:?}"),
        }
        let missing = parse_json::<Probe>(br#"{"name": "x"}"#).expect_err("bad");
        match missing {
            AppError::Validation(errors) => assert_eq!(errors[0].field, "count"),
            other => panic!("expected 422, got {other:?}"),
        }
        let trailing = parse_json::<Probe>(br#"{"name": "x", "count": 1} x"#).expect_err("bad");
        assert!(matches!(trailing, AppError::BadRequest(_)));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        let err = parse_json::<serde_json::Value>(deep.as_bytes()).expect_err("bad");
        assert!(matches!(err, AppError::BadRequest(_)));
    }
}
