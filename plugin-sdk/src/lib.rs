//! Guest SDK for mafalda-host plugins. Empty until the WASM plugins issue fills it.
