//! The pure rules engine of kubepull.
//!
//! Everything in this crate is synchronous and free of I/O, clocks and async runtimes: time is a
//! parameter, files arrive as bytes. It reproduces the Kubernetes behaviour that decides how an
//! image pull is authenticated:
//!
//! - [`reference`](mod@reference): image references with the semantics of `github.com/distribution/reference`
//!   v0.6.0, the version Kubernetes vendors, including its error strings.
//! - [`dockerconfig`]: `.dockerconfigjson`, legacy `.dockercfg` and `config.json`, decoded the way
//!   the kubelet decodes them.
//! - [`keyring`]: the kubelet credential keyring (`pkg/credentialprovider`).
//! - [`pullpolicy`] and [`backoff`]: pull-policy defaulting, the kubelet's pull decision, and the
//!   image-pull back-off schedule.
//! - [`secret`]: `kubectl create secret docker-registry` generation, byte-identical to kubectl 1.32.
//! - [`qos`]: resource quantities and a pod's QoS class (`pkg/apis/core/helper/qos`).
//! - [`lint`]: findings that predict a broken image pull before a pod meets it.
//! - [`diagnose`]: the pure rules of `kubepull doctor`: classify a pasted pull error into a
//!   [`diagnose::Cause`], find the pull-secret traps of a pod, and combine both with a live
//!   registry probe into one verdict.
//! - [`goyaml`]: the parts of the Go YAML emitter (`sigs.k8s.io/yaml`) that kubectl output shows.
//! - [`gojson`]: the parts of Go's `encoding/json` whose exact behaviour is observable.
//!
//! A dependency check in the test suite fails if this crate ever depends on an async runtime, an
//! HTTP client or a Kubernetes client crate.

pub mod backoff;
pub mod diagnose;
pub mod dockerconfig;
pub mod gojson;
pub mod gostr;
pub mod goyaml;
pub mod keyring;
pub mod lint;
pub mod metrics;
pub mod pullpolicy;
pub mod qos;
pub mod reference;
pub mod secret;
