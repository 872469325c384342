//! kubepull's tools for real Kubernetes clusters. They talk to the API server through kube-rs
//! only, with nothing a conformant API server (AKS, EKS, GKE, k3s, `kubepull up`) does not
//! offer, and they are read-only unless their name says otherwise.
//!
//! - [`doctor`]: why a pod cannot pull its image — the credentials the kubelet tries, what the
//!   registry answers to each, the one cause and the command that fixes it. The rules
//!   (message classification, secret traps, the verdict) live in
//!   [`kubepull_core::diagnose`]; this crate gathers the facts and probes the registry.

pub mod doctor;
