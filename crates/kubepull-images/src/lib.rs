//! The kubepull image service: one pull engine for `kubepull pull` and the node agent.
//!
//! Keyring credentials (in the kubelet's order) → registry (resolve by name through the host
//! configuration, fetch by digest, verified, resumed) → node store (one download per blob,
//! per-blob host fallback) → layer snapshots (unpacked while the layers download).
//!
//! - [`puller`]: [`Puller`] pulls one image into a [`kubepull_store::Store`]; [`store_name`]
//!   is the normalized name an image is stored under; [`Progress`] is the seam for bars.
//! - `stream_unpack` (private): the [`Puller`]'s applier, which follows each layer's partial
//!   file behind its download and commits its snapshot once digest and diff ID verified.
//!
//! Kubelet policy (pull policy, back-off, events, `serializeImagePulls`) is the node agent's
//! (`kubepull-node`); this crate only pulls.

pub mod puller;
mod stream_unpack;

pub use puller::{
    error_chain, parse_image, store_name, store_name_of, NoProgress, Progress, PullError,
    PullReport, Puller, DEFAULT_CONCURRENCY, MAX_CONFIG_SIZE,
};
