//! How the local cloud keeps a stack's working state small in the database.
//!
//! Most of a stack's state is text rendered from its files: a server's user
//! data is the driver's fragments with the cluster's values replaced in. So
//! the state is compressed with zstd using the stack's files document (one
//! shared `local_file` row) as the dictionary: what came from the files
//! costs a few bytes per match. User data is kept as text inside the packed
//! document (Nova shows it base64-encoded, which would hide the matches) and
//! encoded again on unpacking, byte for byte.
//!
//! The row's parameters and outputs go into the same packed document: the
//! parameters repeat the state's shown parameters and the outputs its
//! addresses and ids, so inside it they cost a few bytes instead of their
//! length in their columns (which then hold `{}`). Rows packed before keep
//! them in their columns: [`Unpacked`] says which.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;

use super::sim::USER_DATA_ATTRIBUTE;

/// zstd's default level: the dictionary does most of the work.
const LEVEL: i32 = 3;

/// Prepared dictionaries of the last few files documents. Each is built
/// from an immutable, content-addressed row, so a cached one is never stale;
/// a conductor works on a handful of driver versions at a time.
const CACHED: usize = 8;

struct Dictionary {
    key: String,
    encoder: zstd::dict::EncoderDictionary<'static>,
    decoder: zstd::dict::DecoderDictionary<'static>,
}

static CACHE: Mutex<Vec<Arc<Dictionary>>> = Mutex::new(Vec::new());

/// The dictionary of the files document `key`, built from `content()` on a
/// miss.
fn dictionary<E>(
    key: &str,
    content: impl FnOnce() -> Result<String, E>,
) -> Result<Arc<Dictionary>, E> {
    {
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = cache.iter().position(|d| d.key == key) {
            let found = cache.remove(at);
            cache.insert(0, found.clone());
            return Ok(found);
        }
    }
    let text = content()?;
    let built = Arc::new(Dictionary {
        key: key.to_owned(),
        encoder: zstd::dict::EncoderDictionary::copy(text.as_bytes(), LEVEL),
        decoder: zstd::dict::DecoderDictionary::copy(text.as_bytes()),
    });
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    cache.insert(0, built.clone());
    cache.truncate(CACHED);
    Ok(built)
}

#[derive(Debug, thiserror::Error)]
pub enum PackError<E> {
    /// The dictionary's content could not be read.
    #[error(transparent)]
    Dictionary(E),
    #[error("{0}")]
    Invalid(String),
}

/// A JSON pointer segment (RFC 6901).
fn segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Replaces each base64 user data under `value` by its text, and lists
/// where (JSON pointers).
fn decode_user_data(value: &mut Value, path: &mut String, decoded: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let len = path.len();
                path.push('/');
                path.push_str(&segment(key));
                match v {
                    Value::String(s) if key == USER_DATA_ATTRIBUTE => {
                        let text = base64::engine::general_purpose::STANDARD
                            .decode(s.as_bytes())
                            .ok()
                            .and_then(|bytes| String::from_utf8(bytes).ok());
                        // Only what encodes back to the same string.
                        if let Some(text) = text
                            .filter(|t| base64::engine::general_purpose::STANDARD.encode(t) == *s)
                        {
                            *s = text;
                            decoded.push(path.clone());
                        }
                    }
                    _ => decode_user_data(v, path, decoded),
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                decode_user_data(v, path, decoded);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// What a stack row keeps packed, as JSON texts.
#[derive(Debug, Clone, Copy)]
pub struct Documents<'a> {
    pub state: &'a str,
    pub parameters: &'a str,
    pub outputs: &'a str,
}

/// What [`pack`] was given. `parameters` and `outputs` are `None` for a
/// document packed before they moved in (their columns hold them).
#[derive(Debug, Clone, PartialEq)]
pub struct Unpacked {
    pub state: String,
    pub parameters: Option<String>,
    pub outputs: Option<String>,
}

/// `documents` (a stack's state, parameters and outputs) packed against
/// the files document `key`.
pub fn pack<E>(
    documents: Documents<'_>,
    key: &str,
    content: impl FnOnce() -> Result<String, E>,
) -> Result<Vec<u8>, PackError<E>> {
    let parse = |json: &str| -> Result<Value, PackError<E>> {
        serde_json::from_str(json).map_err(|e| PackError::Invalid(e.to_string()))
    };
    let mut state = parse(documents.state)?;
    let mut decoded = Vec::new();
    decode_user_data(&mut state, &mut String::new(), &mut decoded);
    let document = serde_json::json!({
        "state": state,
        "base64": decoded,
        "parameters": parse(documents.parameters)?,
        "outputs": parse(documents.outputs)?,
    });
    let bytes = serde_json::to_vec(&document).map_err(|e| PackError::Invalid(e.to_string()))?;
    let dictionary = dictionary(key, content).map_err(PackError::Dictionary)?;
    let mut compressor = zstd::bulk::Compressor::with_prepared_dictionary(&dictionary.encoder)
        .map_err(|e| PackError::Invalid(e.to_string()))?;
    compressor
        .compress(&bytes)
        .map_err(|e| PackError::Invalid(e.to_string()))
}

/// The JSON texts that [`pack`] was given.
pub fn unpack<E>(
    packed: &[u8],
    key: &str,
    content: impl FnOnce() -> Result<String, E>,
) -> Result<Unpacked, PackError<E>> {
    use std::io::Read as _;
    let dictionary = dictionary(key, content).map_err(PackError::Dictionary)?;
    let invalid = |e: std::io::Error| PackError::Invalid(e.to_string());
    let mut decoder = zstd::stream::Decoder::with_prepared_dictionary(packed, &dictionary.decoder)
        .map_err(invalid)?;
    let mut bytes = Vec::new();
    decoder.read_to_end(&mut bytes).map_err(invalid)?;
    let mut document: Value =
        serde_json::from_slice(&bytes).map_err(|e| PackError::Invalid(e.to_string()))?;
    let pointers: Vec<String> = match document.get("base64") {
        Some(list) => {
            serde_json::from_value(list.clone()).map_err(|e| PackError::Invalid(e.to_string()))?
        }
        None => Vec::new(),
    };
    let mut state = document
        .get_mut("state")
        .map(Value::take)
        .ok_or_else(|| PackError::Invalid("no state in the packed document".into()))?;
    for pointer in pointers {
        if let Some(Value::String(s)) = state.pointer_mut(&pointer) {
            *s = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        }
    }
    let text =
        |value: &Value| serde_json::to_string(value).map_err(|e| PackError::Invalid(e.to_string()));
    Ok(Unpacked {
        state: text(&state)?,
        parameters: document.get("parameters").map(text).transpose()?,
        outputs: document.get("outputs").map(text).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn files() -> Result<String, std::convert::Infallible> {
        Ok(json!({"boot.sh": "#!/bin/bash\necho configure the node\n".repeat(50)}).to_string())
    }

    #[test]
    fn packing_round_trips_and_user_data_comes_back_encoded() {
        let user_data = "#!/bin/bash\necho configure the node\n".repeat(20) + "echo node-1\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(&user_data);
        let state = json!({
            "resources": {"resources": {"a/b~c": {"attributes": {"show": {
                USER_DATA_ATTRIBUTE: encoded, "name": "node-1",
            }}}}},
            // Not base64: kept as it is.
            "other": {USER_DATA_ATTRIBUTE: "not base64!"},
            "list": [{USER_DATA_ATTRIBUTE: ""}],
        })
        .to_string();
        let parameters = json!({"node_count": 2, "name": "node"}).to_string();
        let outputs = json!({"api_address": "127.128.0.2"}).to_string();
        let documents = Documents {
            state: &state,
            parameters: &parameters,
            outputs: &outputs,
        };
        let packed = pack(documents, "test-files-1", files).unwrap();
        assert!(
            packed.len() * 4 < state.len(),
            "{} bytes packed from {}",
            packed.len(),
            state.len()
        );
        let unpacked = unpack(&packed, "test-files-1", files).unwrap();
        let parsed = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(parsed(&unpacked.state), parsed(&state));
        assert_eq!(
            unpacked.parameters.as_deref().map(parsed),
            Some(parsed(&parameters))
        );
        assert_eq!(
            unpacked.outputs.as_deref().map(parsed),
            Some(parsed(&outputs))
        );
    }

    #[test]
    fn a_document_packed_before_parameters_moved_in_has_none() {
        let state = json!({"operation": {"action": "CREATE"}});
        let document = json!({"state": state, "base64": []}).to_string();
        let dictionary = dictionary("test-files-2", files).unwrap();
        let packed = zstd::bulk::Compressor::with_prepared_dictionary(&dictionary.encoder)
            .unwrap()
            .compress(document.as_bytes())
            .unwrap();
        let unpacked = unpack(&packed, "test-files-2", files).unwrap();
        assert_eq!(unpacked.state, state.to_string());
        assert_eq!((unpacked.parameters, unpacked.outputs), (None, None));
    }

    #[test]
    fn a_dictionary_that_cannot_be_read_is_reported() {
        let documents = Documents {
            state: "{}",
            parameters: "{}",
            outputs: "{}",
        };
        let failed = pack(documents, "test-files-missing", || Err("no such row"));
        assert!(matches!(failed, Err(PackError::Dictionary("no such row"))));
    }
}
