//! Controllers for kubepull's API server, written as kube-rs clients so they work against any
//! Kubernetes-conformant API server.
//!
//! The decisions live in pure functions (current objects in, desired actions out), ported from
//! upstream `pkg/controller/...` and `pkg/scheduler/...` with the source named in each module:
//!
//! - [`hash`]: the `pod-template-hash` (`ComputeHash`) and generated-name suffixes;
//! - [`deployment`]: ReplicaSets to create, scale or delete for a Deployment, and its status;
//! - [`rollout`]: RollingUpdate surge/unavailability arithmetic;
//! - [`replicaset`]: pods to create or delete for a ReplicaSet, and its status;
//! - [`scheduler`]: node choice and FailedScheduling messages;
//! - [`gc`]: owner-reference garbage collection (background, foreground, orphan);
//! - [`nodelifecycle`]: NotReady on a stale Lease.
//!
//! [`run_all`] runs them all against an API server through kube-rs informers.

pub mod deployment;
pub mod gc;
pub mod hash;
pub mod nodelifecycle;
pub mod replicaset;
pub mod rollout;
mod run;
pub mod scheduler;

pub use run::{controller_ref, run_all, ControllerOptions, Error, DEFAULT_RESYNC};
