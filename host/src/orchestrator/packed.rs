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
//!
//! The files alone leave the resource tree's shape (keys, types, names) to
//! be paid for by every stack. So the first stack packed against a files
//! row leaves a *sample*: its packed document, with long tokens masked
//! ([`masked`]: ids, digests, credentials are its own, and some secret).
//! Every later state is packed with the files and the sample as its
//! dictionary, and starts with [`SAMPLED`] and the sample's key (8 bytes),
//! so that it is always unpacked with the same dictionary. A k8s state at
//! zstd level 3: about 6.3 KB with the files alone, 3.6 KB with the sample.
//! States packed before (a bare zstd frame) are unpacked with the files
//! alone.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;

use super::sim::USER_DATA_ATTRIBUTE;

/// The dictionary does most of the work; level 5 packs a k8s state with its
/// sample to about 2.9 KB against 3.6 KB at zstd's default 3, for about
/// 0.1 ms more per 80 KB document.
const LEVEL: i32 = 5;

/// Prepared dictionaries of the last few files documents (with or without
/// a sample). Each is built from immutable, content-addressed texts (the
/// sample by its key's first 8 bytes), so a cached one is never stale; a
/// conductor works on a handful of driver versions at a time.
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

/// The first byte of a state packed with a sample (a bare zstd frame
/// starts with 0x28).
const SAMPLED: u8 = 0x01;

/// How many bytes of the sample's key a packed state names.
const SAMPLE_KEY_BYTES: usize = 8;

/// A files document and its sample as `(key, text)`, if one is set.
pub type FilesAndSample = (String, Option<(String, String)>);

/// Where the dictionaries' texts come from (the `local_file` rows).
pub trait Texts {
    type Error;
    /// The files document `key`.
    fn files(&mut self, key: &str) -> Result<String, Self::Error>;
    /// The key (hex SHA-256) of the sample of the files `key`, if set.
    fn sample_key(&mut self, key: &str) -> Result<Option<String>, Self::Error>;
    /// Sets `sample` for the files `key` unless one is set; the key of the
    /// one that is.
    fn offer_sample(&mut self, key: &str, sample: &str) -> Result<String, Self::Error>;
    /// The files `key` and their sample with its key, if set.
    fn files_and_sample(&mut self, key: &str) -> Result<FilesAndSample, Self::Error>;
}

/// `text` with every run of token characters (letters, digits, `+/=_.-`)
/// of 16 or more that holds a digit, or of 24 or more, masked with `0`s:
/// ids, digests, tokens and credentials are one stack's own (no other state
/// matches them), and a sample outlives the stack it came from.
fn masked(text: &str) -> String {
    let bytes = text.as_bytes();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"+/=_.-".contains(&b);
    let mut out = bytes.to_vec();
    let mut at = 0;
    while at < bytes.len() {
        if !token(bytes[at]) {
            at += 1;
            continue;
        }
        let start = at;
        while at < bytes.len() && token(bytes[at]) {
            at += 1;
        }
        let run = &bytes[start..at];
        if run.len() >= 24 || (run.len() >= 16 && run.iter().any(u8::is_ascii_digit)) {
            out[start..at].fill(b'0');
        }
    }
    // Only ASCII bytes were replaced, by ASCII.
    String::from_utf8_lossy(&out).into_owned()
}

/// The dictionary of the files `key` and the sample whose key starts with
/// `sample_prefix` (hex).
fn sampled_dictionary<T: Texts>(
    key: &str,
    sample_prefix: &str,
    texts: &mut T,
) -> Result<Arc<Dictionary>, PackError<T::Error>> {
    dictionary(&format!("{key}/{sample_prefix}"), || {
        let (files, sample) = texts.files_and_sample(key).map_err(PackError::Dictionary)?;
        match sample {
            Some((sample_key, sample)) if sample_key.starts_with(sample_prefix) => {
                Ok(files + &sample)
            }
            _ => Err(PackError::Invalid(format!(
                "the sample {sample_prefix} it was packed with is gone"
            ))),
        }
    })
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
/// the files `key` and their sample (this document, masked, when they have
/// none yet).
pub fn pack<T: Texts>(
    documents: Documents<'_>,
    key: &str,
    texts: &mut T,
) -> Result<Vec<u8>, PackError<T::Error>> {
    let parse = |json: &str| -> Result<Value, PackError<T::Error>> {
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
    let text = serde_json::to_string(&document).map_err(|e| PackError::Invalid(e.to_string()))?;
    let sample_key = match texts.sample_key(key).map_err(PackError::Dictionary)? {
        Some(sample_key) => sample_key,
        None => texts
            .offer_sample(key, &masked(&text))
            .map_err(PackError::Dictionary)?,
    };
    let prefix = hex::decode(sample_key.get(..2 * SAMPLE_KEY_BYTES).unwrap_or_default())
        .ok()
        .filter(|p| p.len() == SAMPLE_KEY_BYTES)
        .ok_or_else(|| PackError::Invalid(format!("sample key {sample_key:?} is not hex")))?;
    let dictionary = sampled_dictionary(key, &hex::encode(&prefix), texts)?;
    let mut compressor = zstd::bulk::Compressor::with_prepared_dictionary(&dictionary.encoder)
        .map_err(|e| PackError::Invalid(e.to_string()))?;
    let frame = compressor
        .compress(text.as_bytes())
        .map_err(|e| PackError::Invalid(e.to_string()))?;
    let mut packed = Vec::with_capacity(1 + SAMPLE_KEY_BYTES + frame.len());
    packed.push(SAMPLED);
    packed.extend_from_slice(&prefix);
    packed.extend_from_slice(&frame);
    Ok(packed)
}

/// The JSON texts that [`pack`] was given.
pub fn unpack<T: Texts>(
    packed: &[u8],
    key: &str,
    texts: &mut T,
) -> Result<Unpacked, PackError<T::Error>> {
    use std::io::Read as _;
    let (dictionary, frame) = match packed.split_first() {
        Some((&SAMPLED, rest)) if rest.len() > SAMPLE_KEY_BYTES => {
            let (prefix, frame) = rest.split_at(SAMPLE_KEY_BYTES);
            (sampled_dictionary(key, &hex::encode(prefix), texts)?, frame)
        }
        // Packed before samples: a bare zstd frame.
        _ => (
            dictionary(key, || texts.files(key)).map_err(PackError::Dictionary)?,
            packed,
        ),
    };
    let invalid = |e: std::io::Error| PackError::Invalid(e.to_string());
    let mut decoder = zstd::stream::Decoder::with_prepared_dictionary(frame, &dictionary.decoder)
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

    /// One files document in memory, with its sample once offered.
    struct Memory {
        files: Result<String, &'static str>,
        sample: Option<(String, String)>,
    }

    impl Memory {
        fn new() -> Self {
            let files = json!({"boot.sh": "#!/bin/bash\necho configure the node\n".repeat(50)});
            Self {
                files: Ok(files.to_string()),
                sample: None,
            }
        }
    }

    impl Texts for Memory {
        type Error = &'static str;
        fn files(&mut self, _: &str) -> Result<String, Self::Error> {
            self.files.clone()
        }
        fn sample_key(&mut self, _: &str) -> Result<Option<String>, Self::Error> {
            self.files.clone()?;
            Ok(self.sample.as_ref().map(|(key, _)| key.clone()))
        }
        fn offer_sample(&mut self, _: &str, sample: &str) -> Result<String, Self::Error> {
            use sha2::Digest as _;
            let key = hex::encode(sha2::Sha256::digest(sample.as_bytes()));
            let kept = self.sample.get_or_insert((key, sample.to_owned()));
            Ok(kept.0.clone())
        }
        fn files_and_sample(&mut self, _: &str) -> Result<FilesAndSample, Self::Error> {
            Ok((self.files.clone()?, self.sample.clone()))
        }
    }

    fn state(node: &str, token: &str) -> String {
        let user_data = "#!/bin/bash\necho configure the node\n".repeat(20) + "echo " + node + "\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(&user_data);
        json!({
            "resources": {"resources": {"a/b~c": {"attributes": {"show": {
                USER_DATA_ATTRIBUTE: encoded, "name": node, "token": token,
            }}}}},
            // Not base64: kept as it is.
            "other": {USER_DATA_ATTRIBUTE: "not base64!"},
            "list": [{USER_DATA_ATTRIBUTE: ""}],
        })
        .to_string()
    }

    #[test]
    fn packing_round_trips_and_user_data_comes_back_encoded() {
        let mut texts = Memory::new();
        let parameters = json!({"node_count": 2, "name": "node"}).to_string();
        let outputs = json!({"api_address": "127.128.0.2"}).to_string();
        for (key, node) in [("test-files-1", "node-1"), ("test-files-1", "node-2")] {
            let state = state(node, "d786505382454bb5be77b2f208cf24e2");
            let documents = Documents {
                state: &state,
                parameters: &parameters,
                outputs: &outputs,
            };
            let packed = pack(documents, key, &mut texts).unwrap();
            assert!(
                packed.len() * 4 < state.len(),
                "{} bytes packed from {}",
                packed.len(),
                state.len()
            );
            assert_eq!(packed[0], SAMPLED);
            let unpacked = unpack(&packed, key, &mut texts).unwrap();
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
        // The first stack left its document as the sample, its token masked.
        let (_, sample) = texts.sample.clone().unwrap();
        assert!(sample.contains("node-1"), "{sample}");
        assert!(!sample.contains("d786505382454bb5"), "{sample}");
    }

    #[test]
    fn a_state_packed_before_samples_and_parameters_unpacks_with_the_files() {
        let mut texts = Memory::new();
        let state = json!({"operation": {"action": "CREATE"}});
        let document = json!({"state": state, "base64": []}).to_string();
        let files = texts.files.clone().unwrap();
        let packed = zstd::bulk::Compressor::with_dictionary(LEVEL, files.as_bytes())
            .unwrap()
            .compress(document.as_bytes())
            .unwrap();
        let unpacked = unpack(&packed, "test-files-2", &mut texts).unwrap();
        assert_eq!(unpacked.state, state.to_string());
        assert_eq!((unpacked.parameters, unpacked.outputs), (None, None));
    }

    #[test]
    fn a_state_whose_sample_is_gone_is_reported() {
        let mut texts = Memory::new();
        let state = state("node-1", "");
        let documents = Documents {
            state: &state,
            parameters: "{}",
            outputs: "{}",
        };
        let packed = pack(documents, "test-files-3", &mut texts).unwrap();
        // Another process's cache aside: a fresh key reads the texts again.
        let unpacked = unpack(&packed, "test-files-3b", &mut Memory::new());
        assert!(matches!(unpacked, Err(PackError::Invalid(_))));
    }

    #[test]
    fn long_tokens_are_masked_and_words_kept() {
        assert_eq!(
            masked(
                r#"{"id":"de9323e5-a08d-439b-a402-3ee84e627ec6","name":"kube_master","n":"c0-512c"}"#
            ),
            r#"{"id":"000000000000000000000000000000000000","name":"kube_master","n":"c0-512c"}"#
        );
    }

    #[test]
    fn a_dictionary_that_cannot_be_read_is_reported() {
        let documents = Documents {
            state: "{}",
            parameters: "{}",
            outputs: "{}",
        };
        let mut texts = Memory::new();
        texts.files = Err("no such row");
        let failed = pack(documents, "test-files-missing", &mut texts);
        assert!(matches!(failed, Err(PackError::Dictionary("no such row"))));
    }
}
