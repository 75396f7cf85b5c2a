//! Componentising plugins: a plugin built with the SDK for `wasm32-unknown-unknown` is a core
//! wasm module carrying wit-bindgen's `component-type` metadata; mafalda-host's runtime loads
//! components. This crate makes one from the other with `wit-component`.
//!
//! It is kept out of the `mafalda-host` library on purpose: `wit-component` pulls `serde_json`
//! into the crate graph, whose `PartialEq` impls on integers change type inference in every
//! application that depends on the library (`assert_eq!(consumer.subchannels(), [])` stops
//! compiling). The `mafalda-host` binary, the build script embedding the shipped plugins and
//! applications that want to load core modules hand [`componentize`] to the library:
//! `mafalda_host::plugin::set_componentizer(mafalda_plugin_componentize::componentize)`.

#![warn(missing_docs)]

use thiserror::Error;

/// A plugin could not be componentised.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ComponentizeError {
    /// The bytes are not WebAssembly.
    #[error("not WebAssembly")]
    NotWasm,
    /// The module is malformed, has no metadata, or its metadata is malformed.
    #[error("{0}")]
    Refused(String),
}

/// Whether `bytes` are a component (rather than a core module).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.len() >= 8 && bytes[6] == 1
}

/// The component form of `bytes`: components are returned as they are; a core module must be
/// valid and carry wit-bindgen metadata.
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>, ComponentizeError> {
    if !bytes.starts_with(b"\0asm") || bytes.len() < 8 {
        return Err(ComponentizeError::NotWasm);
    }
    if is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    let refuse = |reason: String| ComponentizeError::Refused(reason);
    // Validate first: wit-component assumes a well-formed module.
    wasmparser::Validator::new().validate_all(bytes).map_err(|e| refuse(format!("invalid wasm: {e}")))?;
    if !has_component_type_metadata(bytes) {
        return Err(refuse(
            "the module carries no component-type metadata: build it with mafalda-plugin-sdk (wit-bindgen)".into(),
        ));
    }
    // A well-formed module can still carry a malformed metadata section; wit-component may
    // panic on it, which must not take the host down.
    let encoded = std::panic::catch_unwind(|| {
        wit_component::ComponentEncoder::default().module(bytes).and_then(|encoder| encoder.validate(true).encode())
    });
    match encoded {
        Ok(Ok(component)) => Ok(component),
        Ok(Err(e)) => Err(refuse(format!("{e:#}"))),
        Err(_) => Err(refuse("malformed component-type metadata".into())),
    }
}

/// Whether a (validated) core module has a `component-type*` custom section, as wit-bindgen emits.
fn has_component_type_metadata(bytes: &[u8]) -> bool {
    wasmparser::Parser::new(0).parse_all(bytes).any(|payload| {
        matches!(payload, Ok(wasmparser::Payload::CustomSection(section)) if section.name().starts_with("component-type"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_wasm() {
        assert_eq!(componentize(b"hello, world"), Err(ComponentizeError::NotWasm));
        assert_eq!(componentize(b""), Err(ComponentizeError::NotWasm));
    }

    #[test]
    fn a_module_without_metadata_cannot_be_componentised() {
        // The smallest valid core module: header only.
        match componentize(b"\0asm\x01\0\0\0") {
            Err(ComponentizeError::Refused(reason)) => assert!(reason.contains("metadata"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_invalid_module_is_refused() {
        // A header then a truncated type section.
        match componentize(b"\0asm\x01\0\0\0\x01\x05\x01") {
            Err(ComponentizeError::Refused(reason)) => assert!(reason.contains("invalid wasm"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
