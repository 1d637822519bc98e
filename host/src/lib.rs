//! wasmswitch: a programmable telephone switch. The native host does the real-time work (SIP,
//! RTP, media); tenants' decisions run as WebAssembly components in [`plugins`].

pub mod plugins;
