//! The kubepull node agent: a kubelet for kubepull.
//!
//! - [`images`]: the kubelet's image step for one container (`EnsureImageExists`): default tag,
//!   pull policy, keyring credentials, back-off, ensure-secret-pulled verification, with the
//!   kubelet's exact reasons, messages and events.

pub mod agent;
pub mod events;
pub mod images;
mod logs;
pub mod metrics;
pub mod pod;
pub mod podnet;
pub mod pull_limits;
pub mod runc;
pub mod runtime;
pub mod sandbox;
pub mod service;
pub mod service_proxy;
