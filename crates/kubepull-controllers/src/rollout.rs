//! Rolling-update arithmetic of the Deployment controller.
//!
//! Ported from upstream `pkg/controller/deployment/util/deployment_util.go` (`ResolveFenceposts`,
//! `NewRSNewReplicas`, `MaxUnavailable`) and `k8s.io/apimachinery/pkg/util/intstr`
//! (`GetScaledValueFromIntOrPercent`).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Errors resolving surge and unavailability bounds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    /// The value is neither an integer nor a percentage.
    #[error("invalid value {value:?} for {field}: use an integer or a percentage such as \"25%\"")]
    InvalidIntOrPercent {
        /// Field name, e.g. `spec.strategy.rollingUpdate.maxSurge`.
        field: &'static str,
        /// The rejected value.
        value: String,
    },
}

/// Upstream default for both maxSurge and maxUnavailable.
pub const DEFAULT_ROLLING_PERCENT: &str = "25%";

/// `intstr.GetScaledValueFromIntOrPercent`.
pub fn scaled_value(
    v: &IntOrString,
    total: i32,
    round_up: bool,
    field: &'static str,
) -> Result<i32, RolloutError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let bad = || RolloutError::InvalidIntOrPercent {
                field,
                value: s.clone(),
            };
            let pct: i64 = s
                .strip_suffix('%')
                .ok_or_else(bad)?
                .parse()
                .map_err(|_| bad())?;
            let prod = pct * i64::from(total);
            let v = if round_up {
                (prod + 99).div_euclid(100)
            } else {
                prod.div_euclid(100)
            };
            i32::try_from(v).map_err(|_| bad())
        }
    }
}

/// `ResolveFenceposts`: (maxSurge, maxUnavailable) for `desired` replicas. Surge rounds up,
/// unavailability rounds down, and both zero means one unavailable is allowed.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), RolloutError> {
    let default = IntOrString::String(DEFAULT_ROLLING_PERCENT.into());
    let surge = scaled_value(
        max_surge.unwrap_or(&default),
        desired,
        true,
        "spec.strategy.rollingUpdate.maxSurge",
    )?;
    let mut unavailable = scaled_value(
        max_unavailable.unwrap_or(&default),
        desired,
        false,
        "spec.strategy.rollingUpdate.maxUnavailable",
    )?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// `NewRSNewReplicas` for RollingUpdate: how many replicas the new ReplicaSet may have now.
pub fn new_rs_replicas(desired: i32, max_surge: i32, all_rs_replicas: i32, new_rs: i32) -> i32 {
    let max_total = desired + max_surge;
    if all_rs_replicas >= max_total {
        return new_rs;
    }
    let scale_up = max_total - all_rs_replicas;
    new_rs + scale_up.min(desired - new_rs).max(0)
}

/// How many old pods may be scaled down now (`reconcileOldReplicaSets`, without the separate
/// unhealthy-first pass): all pods minus the minimum available minus the new RS's unavailable.
pub fn old_scale_down_budget(
    desired: i32,
    max_unavailable: i32,
    all_pods: i32,
    new_rs_replicas: i32,
    new_rs_available: i32,
) -> i32 {
    let min_available = desired - max_unavailable;
    let new_unavailable = (new_rs_replicas - new_rs_available).max(0);
    (all_pods - min_available - new_unavailable).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn defaults_round_as_upstream() {
        // 3 replicas: surge ceil(0.75)=1, unavailable floor(0.75)=0.
        assert_eq!(resolve_fenceposts(None, None, 3), Ok((1, 0)));
        assert_eq!(resolve_fenceposts(None, None, 10), Ok((3, 2)));
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 5),
            Ok((0, 1))
        );
        assert_eq!(
            resolve_fenceposts(Some(&s("50%")), Some(&s("50%")), 3),
            Ok((2, 1))
        );
    }

    #[test]
    fn bad_percent_is_an_error_naming_the_field() {
        let e = resolve_fenceposts(Some(&s("x%")), None, 3).unwrap_err();
        assert!(e.to_string().contains("maxSurge"));
        assert!(resolve_fenceposts(None, Some(&s("10")), 3).is_err());
    }

    #[test]
    fn new_rs_scales_within_surge() {
        assert_eq!(new_rs_replicas(3, 1, 3, 0), 1);
        assert_eq!(new_rs_replicas(3, 1, 4, 1), 1);
        assert_eq!(new_rs_replicas(3, 1, 0, 0), 3);
        assert_eq!(new_rs_replicas(3, 1, 2, 2), 3);
    }

    #[test]
    fn old_budget_keeps_minimum_available() {
        // 3 desired, 0 unavailable allowed, 4 pods, new RS has 1 unavailable: nothing may go.
        assert_eq!(old_scale_down_budget(3, 0, 4, 1, 0), 0);
        assert_eq!(old_scale_down_budget(3, 0, 4, 1, 1), 1);
    }
}
