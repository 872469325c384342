//! The pod status the kubelet would report (`pkg/kubelet/kubelet_pods.go`,
//! `generateAPIPodStatus`, `getPhase`; `pkg/kubelet/status/generate.go`).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Track, CONTAINER_CREATING};
use crate::runtime::RuntimeState;

fn time(t: jiff::Timestamp) -> Time {
    Time(t)
}

fn terminated(state: &RuntimeState, id: Option<&str>) -> Option<ContainerStateTerminated> {
    match state {
        RuntimeState::Exited {
            exit_code,
            reason,
            started_at,
            finished_at,
        } => Some(ContainerStateTerminated {
            exit_code: *exit_code,
            reason: Some(reason.clone()),
            started_at: started_at.map(time),
            finished_at: Some(time(*finished_at)),
            container_id: id.map(|i| format!("runc://{i}")),
            ..Default::default()
        }),
        _ => None,
    }
}

/// `spec.hostNetwork`.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod status the kubelet would report for these container tracks, for a pod on the host's
/// network (the pod IP is the node IP).
pub fn build_status(
    pod: &Pod,
    tracks: &HashMap<String, Track>,
    node_ip: &str,
    start_time: Option<jiff::Timestamp>,
) -> PodStatus {
    build_status_with_ips(pod, tracks, node_ip, &[node_ip.to_string()], start_time)
}

/// The pod status the kubelet would report for these container tracks with the pod's IPs
/// (primary first; empty until the network is set up, when the kubelet leaves `podIP` unset).
pub fn build_status_with_ips(
    pod: &Pod,
    tracks: &HashMap<String, Track>,
    node_ip: &str,
    pod_ips: &[String],
    start_time: Option<jiff::Timestamp>,
) -> PodStatus {
    build(pod, tracks, node_ip, pod_ips, start_time, false)
}

/// The reason the kubelet gives a container it reports terminated without having seen it exit
/// (`kubecontainer.ContainerReasonStatusUnknown`).
pub const STATUS_UNKNOWN: &str = "ContainerStatusUnknown";
/// The message beside [`STATUS_UNKNOWN`] (status manager `TerminatePod`).
const STATUS_UNKNOWN_MESSAGE: &str =
    "The container could not be located when the pod was terminated";

/// The final status of a pod the node stopped because it is being deleted, reported before
/// the pod object is removed (`syncTerminatingPod`: `generateAPIPodStatus` with
/// `podIsTerminal`, then status manager `TerminatePod`): a container without a terminated state
/// (never started, waiting to restart) is reported terminated with exit code 137,
/// `ContainerStatusUnknown`; the phase is terminal whatever the restart policy: Succeeded when every
/// container exited 0, else Failed, and a phase already terminal is kept. Controllers that wait
/// for a terminal phase (a Job with a `podFailurePolicy`) see one.
pub fn build_terminal_status(
    pod: &Pod,
    tracks: &HashMap<String, Track>,
    node_ip: &str,
    pod_ips: &[String],
    start_time: Option<jiff::Timestamp>,
) -> PodStatus {
    let mut tracks = tracks.clone();
    let mut unknown = std::collections::HashSet::new();
    let now = jiff::Timestamp::now();
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let t = tracks.entry(c.name.clone()).or_default();
        if t.waiting.is_some() || !matches!(t.state, Some(RuntimeState::Exited { .. })) {
            t.waiting = None;
            t.state = Some(RuntimeState::Exited {
                exit_code: 137,
                reason: STATUS_UNKNOWN.into(),
                started_at: None,
                finished_at: now,
            });
            unknown.insert(c.name.clone());
        }
    }
    let mut status = build(pod, &tracks, node_ip, pod_ips, start_time, true);
    for cs in status.container_statuses.iter_mut().flatten() {
        if !unknown.contains(&cs.name) {
            continue;
        }
        if let Some(t) = cs.state.as_mut().and_then(|s| s.terminated.as_mut()) {
            t.message = Some(STATUS_UNKNOWN_MESSAGE.into());
            t.finished_at = None;
            t.container_id = None;
        }
    }
    status
}

fn build(
    pod: &Pod,
    tracks: &HashMap<String, Track>,
    node_ip: &str,
    pod_ips: &[String],
    start_time: Option<jiff::Timestamp>,
    terminal: bool,
) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let mut statuses = vec![];
    let (mut running, mut waiting, mut succeeded, mut failed) = (0, 0, 0, 0);
    let mut unready = vec![];
    for c in &spec.containers {
        let t = tracks.get(&c.name).cloned().unwrap_or_default();
        let id = t.id.as_deref();
        let (state, ready, started) = match (&t.state, &t.waiting) {
            (Some(RuntimeState::Running { started_at }), _) => {
                running += 1;
                (
                    ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(time(*started_at)),
                        }),
                        ..Default::default()
                    },
                    true,
                    true,
                )
            }
            (_, Some((reason, message))) => {
                waiting += 1;
                // a restarting container counts as running for the phase (kubelet getPhase)
                if t.last.is_some() && restart_policy != "Never" {
                    running += 1;
                    waiting -= 1;
                }
                (
                    ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(reason.clone()),
                            message: (!message.is_empty()).then(|| message.clone()),
                        }),
                        ..Default::default()
                    },
                    false,
                    false,
                )
            }
            (Some(s @ RuntimeState::Exited { exit_code, .. }), None) => {
                if *exit_code == 0 {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
                (
                    ContainerState {
                        terminated: terminated(s, id),
                        ..Default::default()
                    },
                    false,
                    false,
                )
            }
            _ => {
                waiting += 1;
                (
                    ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(CONTAINER_CREATING.into()),
                            message: None,
                        }),
                        ..Default::default()
                    },
                    false,
                    false,
                )
            }
        };
        if !ready {
            unready.push(c.name.clone());
        }
        statuses.push(ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: t.image_ref.clone(),
            ready,
            started: Some(started),
            restart_count: t.restarts as i32,
            state: Some(state),
            last_state: t.last.as_ref().and_then(|l| {
                terminated(l, None).map(|term| ContainerState {
                    terminated: Some(term),
                    ..Default::default()
                })
            }),
            container_id: id.map(|i| format!("runc://{i}")),
            ..Default::default()
        });
    }
    let total = spec.containers.len();
    // pkg/kubelet/kubelet_pods.go getPhase
    let phase = if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if succeeded + failed == total && total > 0 {
        if restart_policy == "Always" {
            "Running"
        } else if failed > 0 && restart_policy == "Never" {
            "Failed"
        } else if failed > 0 {
            "Running"
        } else {
            "Succeeded"
        }
    } else {
        "Pending"
    };
    let previous_phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let phase = match previous_phase {
        // pods do not leave a terminal phase
        Some(p @ ("Succeeded" | "Failed")) if terminal => p,
        // getPhase with podIsTerminal, every container stopped: their restart policy no
        // longer applies
        _ if terminal && succeeded == total => "Succeeded",
        _ if terminal => "Failed",
        _ => phase,
    };
    let now = time(jiff::Timestamp::now());
    let previous: BTreeMap<String, PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_.clone(), c))
        .collect();
    let cond = |type_: &str, ok: bool, reason: Option<String>, message: Option<String>| {
        let status = if ok { "True" } else { "False" }.to_string();
        let last_transition_time = match previous.get(type_) {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        PodCondition {
            type_: type_.to_string(),
            status,
            reason,
            message,
            last_transition_time,
            last_probe_time: None,
            ..Default::default()
        }
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let all_ready = unready.is_empty() && total > 0;
    let (ready_reason, ready_msg) = if all_ready {
        (None, None)
    } else if completed {
        (Some("PodCompleted".to_string()), None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let mut conditions = vec![
        cond("PodReadyToStartContainers", !completed, None, None),
        cond(
            "Initialized",
            true,
            completed.then(|| "PodCompleted".to_string()),
            None,
        ),
        cond("Ready", all_ready, ready_reason.clone(), ready_msg.clone()),
        cond("ContainersReady", all_ready, ready_reason, ready_msg),
    ];
    if let Some(s) = previous.get("PodScheduled") {
        conditions.push(s.clone());
    } else {
        conditions.push(cond("PodScheduled", true, None, None));
    }
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        host_ip: Some(node_ip.to_string()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: node_ip.to_string(),
        }]),
        // kubelet_pods.go generateAPIPodStatus: podIP is podIPs[0]
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: start_time.map(time),
        // the stored class is immutable (ValidatePodStatusUpdate); the kubelet reports it back
        qos_class: Some(crate::sandbox::security::pod_qos(pod)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::CRASH_LOOP_BACK_OFF;
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    fn pod(containers: &[&str], restart: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some("uid-1".into());
        let mut spec = k8s_openapi::api::core::v1::PodSpec {
            restart_policy: Some(restart.into()),
            ..Default::default()
        };
        for c in containers {
            spec.containers.push(Container {
                name: c.to_string(),
                image: Some("reg/app:v1".into()),
                ..Default::default()
            });
        }
        p.spec = Some(spec);
        p
    }

    #[test]
    fn status_reports_the_stored_qos_class() {
        // no resources: computed BestEffort when the server stored none
        let mut p = pod(&["app"], "Always");
        let s = build_status(&p, &HashMap::new(), "127.0.0.1", None);
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        // the class stored at creation is reported back unchanged (GetPodQOS)
        p.status = Some(PodStatus {
            qos_class: Some("Burstable".into()),
            ..Default::default()
        });
        let s = build_status(&p, &HashMap::new(), "127.0.0.1", None);
        assert_eq!(s.qos_class.as_deref(), Some("Burstable"));
        // a BestEffort the spec does not make is what earlier builds stored for every pod:
        // the class the resources make is reported instead
        let mut requests = std::collections::BTreeMap::new();
        requests.insert(
            "cpu".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("100m".into()),
        );
        p.spec.as_mut().unwrap().containers[0].resources =
            Some(k8s_openapi::api::core::v1::ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            });
        p.status.as_mut().unwrap().qos_class = Some("BestEffort".into());
        let s = build_status(&p, &HashMap::new(), "127.0.0.1", None);
        assert_eq!(s.qos_class.as_deref(), Some("Burstable"));
    }

    #[test]
    fn status_waiting_on_image_pull() {
        let p = pod(&["app"], "Always");
        let mut tracks = HashMap::new();
        tracks.insert(
            "app".to_string(),
            Track {
                waiting: Some(("ImagePullBackOff".into(), "Back-off pulling image".into())),
                ..Default::default()
            },
        );
        let s = build_status(&p, &tracks, "127.0.0.1", None);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.unwrap()[0];
        let w = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(!cs.ready);
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [app]")
        );
    }

    #[test]
    fn status_running_and_completed() {
        let p = pod(&["app"], "Always");
        let mut tracks = HashMap::new();
        tracks.insert(
            "app".to_string(),
            Track {
                id: Some("c1".into()),
                state: Some(RuntimeState::Running {
                    started_at: jiff::Timestamp::now(),
                }),
                image_ref: "sha256:ab".into(),
                ..Default::default()
            },
        );
        let s = build_status(&p, &tracks, "127.0.0.1", None);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("runc://c1"));

        let p = pod(&["job"], "Never");
        let mut tracks = HashMap::new();
        tracks.insert(
            "job".to_string(),
            Track {
                id: Some("c2".into()),
                state: Some(RuntimeState::Exited {
                    exit_code: 1,
                    reason: "Error".into(),
                    started_at: None,
                    finished_at: jiff::Timestamp::now(),
                }),
                ..Default::default()
            },
        );
        let s = build_status(&p, &tracks, "127.0.0.1", None);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    fn exited(code: i32) -> Track {
        Track {
            state: Some(RuntimeState::Exited {
                exit_code: code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                started_at: None,
                finished_at: jiff::Timestamp::now(),
            }),
            ..Default::default()
        }
    }

    fn terminated_of(s: &PodStatus, name: &str) -> ContainerStateTerminated {
        s.container_statuses
            .iter()
            .flatten()
            .find(|c| c.name == name)
            .and_then(|c| c.state.as_ref()?.terminated.clone())
            .unwrap_or_else(|| panic!("{name} is not terminated: {s:?}"))
    }

    #[test]
    fn a_deleted_pod_is_reported_in_a_terminal_phase() {
        // a Deployment's pod killed by its deletion: Running would come back for restart
        // policy Always; a terminal pod is Failed
        let p = pod(&["app"], "Always");
        let tracks = HashMap::from([("app".to_string(), exited(137))]);
        assert_eq!(
            build_status(&p, &tracks, "127.0.0.1", None)
                .phase
                .as_deref(),
            Some("Running")
        );
        let s = build_terminal_status(&p, &tracks, "127.0.0.1", &[], None);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(terminated_of(&s, "app").exit_code, 137);
        let ready = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );

        // every container exited 0: Succeeded, whatever the restart policy
        let p = pod(&["a", "b"], "Always");
        let tracks = HashMap::from([("a".to_string(), exited(0)), ("b".to_string(), exited(0))]);
        let s = build_terminal_status(&p, &tracks, "127.0.0.1", &[], None);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));

        // a container that never ran (its image never pulled) or waits to restart is reported
        // terminated, status unknown (TerminatePod), and the pod failed
        let p = pod(&["done", "pulling", "looping"], "Never");
        let mut looping = exited(2);
        looping.last = looping.state.take();
        looping.waiting = Some((CRASH_LOOP_BACK_OFF.into(), "back-off 10s".into()));
        let tracks = HashMap::from([
            ("done".to_string(), exited(0)),
            (
                "pulling".to_string(),
                Track {
                    waiting: Some(("ImagePullBackOff".into(), "Back-off pulling image".into())),
                    ..Default::default()
                },
            ),
            ("looping".to_string(), looping),
        ]);
        let s = build_terminal_status(&p, &tracks, "127.0.0.1", &[], None);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(terminated_of(&s, "done").exit_code, 0);
        assert_eq!(terminated_of(&s, "done").message, None);
        for name in ["pulling", "looping"] {
            let t = terminated_of(&s, name);
            assert_eq!(t.exit_code, 137, "{name}");
            assert_eq!(t.reason.as_deref(), Some(STATUS_UNKNOWN), "{name}");
            assert_eq!(
                t.message.as_deref(),
                Some("The container could not be located when the pod was terminated")
            );
            assert_eq!(t.finished_at, None, "{name}");
        }

        // a phase already terminal is kept
        let mut p = pod(&["app"], "OnFailure");
        p.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        let s = build_terminal_status(&p, &HashMap::new(), "127.0.0.1", &[], None);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn status_pod_ips_from_the_network() {
        let p = pod(&["app"], "Always");
        let tracks = HashMap::new();
        // before CNI ADD: no podIP yet, the host IP is there
        let s = build_status_with_ips(&p, &tracks, "192.0.2.2", &[], None);
        assert_eq!(s.pod_ip, None);
        assert_eq!(s.pod_ips, None);
        assert_eq!(s.host_ip.as_deref(), Some("192.0.2.2"));
        assert_eq!(s.host_ips.unwrap()[0].ip, "192.0.2.2");
        // dual stack: the primary first, all in podIPs
        let ips = vec!["10.244.1.5".to_string(), "fd00::5".to_string()];
        let s = build_status_with_ips(&p, &tracks, "192.0.2.2", &ips, None);
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.5"));
        let all: Vec<String> = s.pod_ips.unwrap().into_iter().map(|i| i.ip).collect();
        assert_eq!(all, ips);
        // host network: the node's IP
        let s = build_status(&p, &tracks, "192.0.2.2", None);
        assert_eq!(s.pod_ip.as_deref(), Some("192.0.2.2"));
    }

    #[test]
    fn crash_loop_counts_as_running() {
        let p = pod(&["app"], "Always");
        let mut tracks = HashMap::new();
        tracks.insert(
            "app".to_string(),
            Track {
                waiting: Some((CRASH_LOOP_BACK_OFF.into(), "back-off 10s".into())),
                last: Some(RuntimeState::Exited {
                    exit_code: 2,
                    reason: "Error".into(),
                    started_at: None,
                    finished_at: jiff::Timestamp::now(),
                }),
                restarts: 1,
                ..Default::default()
            },
        );
        let s = build_status(&p, &tracks, "127.0.0.1", None);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 1);
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            2
        );
    }
}
