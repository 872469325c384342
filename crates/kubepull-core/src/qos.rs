//! Resource quantities and a pod's QoS class, over plain name → quantity pairs so that the API
//! server (which stores `status.qosClass` at creation) and the node agent (which sizes cgroups
//! from it) compute the same class.

/// A Kubernetes quantity in milli-units, rounded up (`resource.Quantity.MilliValue`; a quantity
/// keeps at most three decimal places, so milli-units compare as `Quantity.Cmp` does:
/// `1` == `1000m`). `None` when the text is not a quantity.
pub fn quantity_milli(q: &str) -> Option<i128> {
    let q = q.trim();
    let (num, mult_num, mult_den): (&str, i128, i128) = {
        let suffixes: &[(&str, i128, i128)] = &[
            ("Ki", 1 << 10, 1),
            ("Mi", 1 << 20, 1),
            ("Gi", 1 << 30, 1),
            ("Ti", 1 << 40, 1),
            ("Pi", 1 << 50, 1),
            ("Ei", 1 << 60, 1),
            ("n", 1, 1_000_000_000),
            ("u", 1, 1_000_000),
            ("m", 1, 1000),
            ("k", 1000, 1),
            ("M", 1_000_000, 1),
            ("G", 1_000_000_000, 1),
            ("T", 1_000_000_000_000, 1),
            ("P", 1_000_000_000_000_000, 1),
            ("E", 1_000_000_000_000_000_000, 1),
        ];
        match suffixes.iter().find(|(s, _, _)| q.ends_with(s)) {
            Some((s, n, d)) => (&q[..q.len() - s.len()], *n, *d),
            None => match q.find(['e', 'E']) {
                Some(i) => {
                    let exp: i32 = q[i + 1..].trim_start_matches('+').parse().ok()?;
                    // beyond i128 the value saturates below
                    let pow = |e: i32| 10i128.checked_pow(e.unsigned_abs()).unwrap_or(i128::MAX);
                    if exp >= 0 {
                        (&q[..i], pow(exp), 1)
                    } else {
                        (&q[..i], 1, pow(exp))
                    }
                }
                None => (q, 1, 1),
            },
        }
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let neg = int.starts_with('-');
    let int = int.trim_start_matches(['+', '-']);
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // digits past the 18th decimal place cannot change a milli value rounded up, but for the
    // rounding itself: any of them not 0 counts as one more at the 18th
    let (frac, rest_nonzero) = if frac.len() > 18 {
        (&frac[..18], frac[18..].bytes().any(|b| b != b'0'))
    } else {
        (frac, false)
    };
    let int = int.trim_start_matches('0');
    let saturated = Some(if neg { i128::MIN } else { i128::MAX });
    let digits = format!("{int}{frac}");
    let Ok(mut mantissa) = (if digits.is_empty() {
        Ok(0)
    } else {
        digits.parse::<i128>()
    }) else {
        // more digits than i128 holds: a value no resource list means literally
        return saturated;
    };
    if rest_nonzero {
        mantissa = mantissa.saturating_add(1);
    }
    // value = mantissa / 10^frac * mult_num / mult_den; milli = value * 1000, rounded up, with
    // the 1000 taken out of the fraction's scale first
    let (milli, scale) = match frac.len() {
        n @ 0..=3 => (10i128.pow(3 - n as u32), 1),
        n => (1, 10i128.pow(n as u32 - 3)),
    };
    let Some(num) = mantissa
        .checked_mul(mult_num)
        .and_then(|n| n.checked_mul(milli))
    else {
        return saturated;
    };
    let Some(den) = scale.checked_mul(mult_den) else {
        // a divisor past i128: the value is below one milli-unit
        return Some(if num == 0 {
            0
        } else if neg {
            -1
        } else {
            1
        });
    };
    let v = num / den + i128::from(num % den != 0);
    Some(if neg { -v } else { v })
}

/// A pod's QoS class (`core.PodQOSClass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The `status.qosClass` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// The resources QoS looks at (`supportedQoSComputeResources`).
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// A pod's QoS class from its containers' and init containers' `(requests, limits)`, each a list
/// of `(resource name, quantity)` (k8s `pkg/apis/core/helper/qos/qos.go` `ComputePodQOS`): the
/// positive cpu and memory requests and limits are summed over all containers; no such request
/// or limit is BestEffort; Guaranteed needs every container to limit both cpu and memory and the
/// summed requests to equal the summed limits; anything else is Burstable. A request a container
/// leaves out takes its limit, as the API's `SetDefaults_Pod` defaults it. Unparseable quantities
/// count as absent.
pub fn pod_qos_class<'a, C, L>(containers: C) -> QosClass
where
    C: IntoIterator<Item = (L, L)>,
    L: IntoIterator<Item = (&'a str, &'a str)>,
{
    let positive = |list: L| -> Vec<(&'a str, Option<i128>)> {
        list.into_iter()
            .filter(|(name, _)| QOS_RESOURCES.contains(name))
            .map(|(name, q)| (name, quantity_milli(q)))
            .collect()
    };
    // per resource: (summed requests, summed limits), each None until a positive one is seen
    let mut sums: [(Option<i128>, Option<i128>); 2] = [(None, None); 2];
    let add = |slot: &mut Option<i128>, v: Option<i128>| {
        if let Some(v) = v.filter(|v| *v > 0) {
            *slot = Some(slot.unwrap_or(0).saturating_add(v));
        }
    };
    let mut guaranteed = true;
    for (requests, limits) in containers {
        let requests = positive(requests);
        let limits = positive(limits);
        for (i, name) in QOS_RESOURCES.iter().enumerate() {
            let limit = limits.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            let request = match requests.iter().find(|(n, _)| n == name) {
                Some((_, v)) => *v,
                None => limit.flatten(),
            };
            add(&mut sums[i].0, request);
            add(&mut sums[i].1, limit.flatten());
            if limit.flatten().is_none_or(|v| v <= 0) {
                guaranteed = false;
            }
        }
    }
    if sums.iter().all(|(r, l)| r.is_none() && l.is_none()) {
        return QosClass::BestEffort;
    }
    // every summed request has an equal summed limit, and as many limits as requests
    let matched = sums.iter().all(|(r, l)| match r {
        Some(r) => *l == Some(*r),
        None => l.is_none(),
    });
    if guaranteed && matched {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_milli("100m"), Some(100));
        assert_eq!(quantity_milli("1"), Some(1000));
        assert_eq!(quantity_milli("0.5"), Some(500));
        assert_eq!(quantity_milli("32Mi"), Some(32 * 1024 * 1024 * 1000));
        assert_eq!(quantity_milli("1G"), Some(1_000_000_000_000));
        assert_eq!(quantity_milli("1e3"), Some(1_000_000));
        assert_eq!(quantity_milli("0.1m"), Some(1));
        assert_eq!(quantity_milli("x"), None);
        assert_eq!(quantity_milli("1e-3"), Some(1));
        assert_eq!(quantity_milli("0.0000000000000000000001"), Some(1));
        assert_eq!(quantity_milli("0.000000000000000000000"), Some(0));
        // rounding up at the top of the range does not overflow; values past i128 saturate
        // instead of overflowing (or counting as absent)
        assert_eq!(
            quantity_milli("170141183460469231731687303715884.105"),
            Some(170_141_183_460_469_231_731_687_303_715_884_105)
        );
        assert_eq!(
            quantity_milli("170141183460469231731687303715884.1051"),
            Some(170_141_183_460_469_231_731_687_303_715_884_106)
        );
        assert_eq!(quantity_milli("1e40"), Some(i128::MAX));
        assert_eq!(
            quantity_milli("123456789012345678901234567890123456789012"),
            Some(i128::MAX)
        );
        assert_eq!(
            quantity_milli("999999999999999999999999999999999E"),
            Some(i128::MAX)
        );
    }

    type Res = (
        Vec<(&'static str, &'static str)>,
        Vec<(&'static str, &'static str)>,
    );

    fn class(cs: &[Res]) -> QosClass {
        pod_qos_class(
            cs.iter()
                .map(|(r, l)| (r.iter().copied(), l.iter().copied())),
        )
    }

    #[test]
    fn qos_classes() {
        let cpu_mem = |c: &'static str, m: &'static str| vec![("cpu", c), ("memory", m)];
        assert_eq!(class(&[]), QosClass::BestEffort);
        assert_eq!(class(&[(vec![], vec![])]), QosClass::BestEffort);
        // only cpu and memory count; zero quantities are not requests
        let other = vec![("ephemeral-storage", "1Gi"), ("cpu", "0")];
        assert_eq!(class(&[(other.clone(), other)]), QosClass::BestEffort);
        // requests default from limits; equal quantities compare numerically
        assert_eq!(
            class(&[(vec![], cpu_mem("1", "1Gi"))]),
            QosClass::Guaranteed
        );
        assert_eq!(
            class(&[(cpu_mem("1000m", "1024Mi"), cpu_mem("1", "1Gi"))]),
            QosClass::Guaranteed
        );
        assert_eq!(
            class(&[(cpu_mem("500m", "1Gi"), cpu_mem("1", "1Gi"))]),
            QosClass::Burstable
        );
        assert_eq!(
            class(&[(vec![("memory", "1Gi")], vec![])]),
            QosClass::Burstable
        );
        // a container limiting only cpu is not Guaranteed
        assert_eq!(class(&[(vec![], vec![("cpu", "1")])]), QosClass::Burstable);
        // one BestEffort container among Guaranteed ones makes the pod Burstable
        assert_eq!(
            class(&[(vec![], cpu_mem("1", "1Gi")), (vec![], vec![])]),
            QosClass::Burstable
        );
        // sums are compared, not containers one by one (as upstream)
        assert_eq!(
            class(&[
                (cpu_mem("1", "1Gi"), cpu_mem("2", "1Gi")),
                (cpu_mem("2", "1Gi"), cpu_mem("1", "1Gi")),
            ]),
            QosClass::Guaranteed
        );
    }
}
