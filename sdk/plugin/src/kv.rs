//! The tenant's small persistent key-value store (keys up to 256 bytes, values up to 64 KiB),
//! shared by all its plugins and kept across calls and restarts.

use crate::__bindings::router::wasmswitch::plugin::kv as host;

pub use host::Error;

/// The value under `key`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    host::get(key)
}

/// The value under `key` as UTF-8 text; a value that is not UTF-8 reads as missing.
pub fn get_string(key: &str) -> Result<Option<String>, Error> {
    Ok(host::get(key)?.and_then(|v| String::from_utf8(v).ok()))
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
    host::set(key, value.as_ref())
}

/// Removes `key` (removing a missing key is fine).
pub fn delete(key: &str) -> Result<(), Error> {
    host::delete(key)
}

/// Keys starting with `prefix`, in byte order, at most `limit`.
pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, Error> {
    host::list_keys(prefix, limit)
}
