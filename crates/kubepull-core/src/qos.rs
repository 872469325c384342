//! Resource quantities and a pod's QoS class, over plain name → quantity pairs so that the API
//! server (which stores `status.qosClass` at creation) and the node agent (which sizes cgroups
//! from it) compute the same class.

/// A Kubernetes quantity in milli-units, rounded up away from zero
/// (`resource.Quantity.MilliValue`). `None` when the text is not a quantity.
pub fn quantity_milli(q: &str) -> Option<i128> {
    quantity_scaled(q, 3)
}

/// A Kubernetes quantity in its base units (cores, bytes), rounded up away from zero
/// (`resource.Quantity.Value`). `None` when the text is not a quantity.
pub fn quantity_value(q: &str) -> Option<i128> {
    quantity_scaled(q, 0)
}

/// A Kubernetes quantity in nano-units, the finest a `resource.Quantity` holds (`ParseQuantity`
/// rounds a finer value up to `1n`), so two quantities are equal as `Quantity.Cmp` compares them
/// (`1` == `1000m` == `1e3m`, as `apiequality.Semantic.DeepEqual` compares quantities) exactly
/// when their nano-units are. `None` when the text is not a quantity.
pub fn quantity_nano(q: &str) -> Option<i128> {
    quantity_scaled(q, 9)
}

/// A quantity's value × 10^`digits`, rounded up away from zero (`digits` ≤ 18).
fn quantity_scaled(q: &str, digits: u32) -> Option<i128> {
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
    // digits past the 18th decimal place cannot change a value scaled by at most 10^18 and
    // rounded up, but for the rounding itself: any of them not 0 counts as one more at the 18th
    let (frac, rest_nonzero) = if frac.len() > 18 {
        (&frac[..18], frac[18..].bytes().any(|b| b != b'0'))
    } else {
        (frac, false)
    };
    let int = int.trim_start_matches('0');
    let saturated = Some(if neg { i128::MIN } else { i128::MAX });
    let all = format!("{int}{frac}");
    let Ok(mut mantissa) = (if all.is_empty() {
        Ok(0)
    } else {
        all.parse::<i128>()
    }) else {
        // more digits than i128 holds: a value no resource list means literally
        return saturated;
    };
    if rest_nonzero {
        mantissa = mantissa.saturating_add(1);
    }
    // value = mantissa / 10^frac * mult_num / mult_den; scaled = value * 10^digits, rounded
    // up, with the 10^digits taken out of the fraction's scale first
    let frac_digits = frac.len() as u32;
    let (up, scale) = if frac_digits <= digits {
        (10i128.pow(digits - frac_digits), 1)
    } else {
        (1, 10i128.pow(frac_digits - digits))
    };
    let Some(num) = mantissa
        .checked_mul(mult_num)
        .and_then(|n| n.checked_mul(up))
    else {
        return saturated;
    };
    let Some(den) = scale.checked_mul(mult_den) else {
        // a divisor past i128: the value is below one unit of the scale
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
/// leaves out takes its limit: the API server defaults it so (`SetDefaults_Pod`) before it
/// computes the class, and pods stored before it did are read the same way. Unparseable
/// quantities count as absent.
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

    #[test]
    fn quantities_compare_as_quantity_cmp() {
        let eq = |a: &str, b: &str| quantity_nano(a).unwrap() == quantity_nano(b).unwrap();
        assert!(eq("1", "1000m"));
        assert!(eq("1Gi", "1024Mi"));
        assert!(eq("1k", "1e3"));
        assert!(eq("0.5", "500m"));
        assert!(eq("1m", "1000000n"));
        assert!(!eq("1", "2"));
        assert!(!eq("1G", "1Gi"));
        // below a milli-unit values still differ (nano is a quantity's precision), and a value
        // finer than nano is rounded up to it as ParseQuantity does
        assert!(!eq("1n", "2n"));
        assert!(eq("0.0000000001", "1n"));
        assert_eq!(quantity_nano("1500u"), Some(1_500_000));
        assert_eq!(quantity_nano("x"), None);
        assert_eq!(quantity_value("1.5"), Some(2));
        assert_eq!(quantity_value("-1.5"), Some(-2));
        assert_eq!(quantity_value("1Ki"), Some(1024));
        assert_eq!(quantity_value("100m"), Some(1));
        assert_eq!(quantity_value("5x"), None);
        assert_eq!(quantity_value(""), None);
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
