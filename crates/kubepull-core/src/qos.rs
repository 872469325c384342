//! Resource quantities and a pod's QoS class, over plain name → quantity pairs so that the API
//! server (which stores `status.qosClass` at creation) and the node agent (which sizes cgroups
//! from it) compute the same class.

use std::cmp::Ordering;

/// How a quantity was written (`resource.Format`): its suffix decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantityFormat {
    /// `1e3`, `1E-2`.
    DecimalExponent,
    /// `1Ki` … `1Ei`.
    BinarySI,
    /// No suffix, or `n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`.
    DecimalSI,
}

/// A quantity's exact value as `resource.ParseQuantity` keeps it: `±digits × 10^exp`, the
/// digits (0–9 each) without leading or trailing zeros (none for 0), and the format. Equal
/// and ordered by value whatever the format, as `Quantity.Cmp` (`1` == `1000m`,
/// `1k` == `1e3` == `1000`, `1Ki` == `1024`).
#[derive(Clone, Debug)]
pub struct Quantity {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
    format: QuantityFormat,
}

/// `maxAllowed`: a binary-suffixed quantity is capped at `math.MaxInt64`.
const MAX_INT64_DIGITS: &[u8] = &[9, 2, 2, 3, 3, 7, 2, 0, 3, 6, 8, 5, 4, 7, 7, 5, 8, 0, 7];

impl Quantity {
    /// `resource.ParseQuantity` (k8s.io/apimachinery `pkg/api/resource/quantity.go`) of the text
    /// a JSON body holds (`UnmarshalJSON` trims surrounding whitespace): `[+-]<digits>[.<digits>]`
    /// then a suffix — `Ki`…`Ei`, `n` `u` `m` `k` `M` `G` `T` `P` `E`, or `e`/`E` and a signed
    /// integer. One sign only (`+-1`, `1e++3`, `1e3m` are not quantities); a number without
    /// digits is 0 as `parseQuantityString` makes it (`-`, `+`, `k`). The value is exact, rounded
    /// up (away from zero) to nano-units when finer, and a binary-suffixed one is capped at
    /// `math.MaxInt64` as Go caps it. `None` when Go's parser refuses the text.
    pub fn parse(q: &str) -> Option<Quantity> {
        let s = q.trim();
        if s.is_empty() {
            return None;
        }
        let b = s.as_bytes();
        let mut pos = 0;
        let neg = match b[0] {
            b'-' => {
                pos = 1;
                true
            }
            b'+' => {
                pos = 1;
                false
            }
            _ => false,
        };
        let digits_at = |mut p: usize| {
            while p < b.len() && b[p].is_ascii_digit() {
                p += 1;
            }
            p
        };
        let int_end = digits_at(pos);
        let int = &b[pos..int_end];
        let mut frac: &[u8] = &[];
        let mut num_end = int_end;
        if num_end < b.len() && b[num_end] == b'.' {
            let end = digits_at(num_end + 1);
            frac = &b[num_end + 1..end];
            num_end = end;
        }
        // parseQuantityString: the sign and zeros alone are 0, whatever follows none
        if b[pos..].iter().all(|c| *c == b'0') {
            return Some(Quantity::zero(QuantityFormat::DecimalSI));
        }
        // the suffix: letters of "eEinumkKMGTP", an optional sign, digits to the end
        let suffix = &s[num_end..];
        let letters = suffix
            .find(|c: char| !"eEinumkKMGTP".contains(c))
            .unwrap_or(suffix.len());
        let rest = &suffix[letters..];
        let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
        if !rest.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // quantitySuffixer.interpret
        let (format, base2, exponent): (QuantityFormat, bool, i64) = match suffix {
            "" => (QuantityFormat::DecimalSI, false, 0),
            "n" => (QuantityFormat::DecimalSI, false, -9),
            "u" => (QuantityFormat::DecimalSI, false, -6),
            "m" => (QuantityFormat::DecimalSI, false, -3),
            "k" => (QuantityFormat::DecimalSI, false, 3),
            "M" => (QuantityFormat::DecimalSI, false, 6),
            "G" => (QuantityFormat::DecimalSI, false, 9),
            "T" => (QuantityFormat::DecimalSI, false, 12),
            "P" => (QuantityFormat::DecimalSI, false, 15),
            "E" => (QuantityFormat::DecimalSI, false, 18),
            "Ki" => (QuantityFormat::BinarySI, true, 10),
            "Mi" => (QuantityFormat::BinarySI, true, 20),
            "Gi" => (QuantityFormat::BinarySI, true, 30),
            "Ti" => (QuantityFormat::BinarySI, true, 40),
            "Pi" => (QuantityFormat::BinarySI, true, 50),
            "Ei" => (QuantityFormat::BinarySI, true, 60),
            e if e.len() > 1 && e.starts_with(['e', 'E']) => {
                // strconv.ParseInt(…, 10, 64), then int32(…)
                let parsed: i64 = e[1..].parse().ok()?;
                (
                    QuantityFormat::DecimalExponent,
                    false,
                    i64::from(parsed as i32),
                )
            }
            _ => return None,
        };
        let has_digits = !int.is_empty() || !frac.is_empty();
        let int_digits = int.iter().skip_while(|c| **c == b'0').count().max(1);
        // Go's fast path (an int64 at a scale of at least nano) takes a number without digits
        // as 0; the arbitrary-precision one refuses it (`inf.Dec.SetString("")`)
        let fast = if base2 {
            // `precision = 15 - len(num) - int32(float32(exponent)*3/10) - 1`
            let precision = 15 - int_digits as i64 - (exponent as f32 * 3.0 / 10.0) as i64 - 1;
            frac.is_empty() && precision >= 0
        } else {
            // `precision = maxInt64Factors - len(num) - len(denom)`, and a scale of at least nano
            let precision = 18 - (int_digits + frac.len()) as i64;
            precision >= 0 && exponent - frac.len() as i64 >= -9
        };
        if !has_digits && !fast {
            return None;
        }
        let mut digits: Vec<u8> = int.iter().chain(frac).map(|c| c - b'0').collect();
        let exp = exponent * i64::from(!base2) - frac.len() as i64;
        if base2 {
            for _ in 0..exponent / 10 {
                mul_small(&mut digits, 1024);
            }
        }
        let mut q = Quantity {
            neg,
            digits,
            exp,
            format,
        };
        q.normalise();
        // rounded up to nano-units (inf.RoundUp, away from zero)
        if q.exp < -9 {
            q = q.round_up(-9);
        }
        if base2
            && q.cmp_magnitude(&Quantity::from_digits(MAX_INT64_DIGITS, 0)) == Ordering::Greater
        {
            q.digits = MAX_INT64_DIGITS.to_vec();
            q.exp = 0;
        }
        if q.format == QuantityFormat::BinarySI
            && q.cmp_magnitude(&Quantity::from_digits(&[1], 0)) == Ordering::Less
        {
            q.format = QuantityFormat::DecimalSI;
        }
        Some(q)
    }

    /// `value × 10^exp` written in `format`: what `resource.NewScaledQuantity` makes, or a sum
    /// of quantities (`Quantity.Add` keeps the first operand's format).
    pub fn from_scaled(value: i128, exp: i64, format: QuantityFormat) -> Quantity {
        let digits = value
            .unsigned_abs()
            .to_string()
            .bytes()
            .map(|c| c - b'0')
            .collect();
        let mut q = Quantity {
            neg: value < 0,
            digits,
            exp,
            format,
        };
        q.normalise();
        q
    }

    fn zero(format: QuantityFormat) -> Quantity {
        Quantity {
            neg: false,
            digits: vec![],
            exp: 0,
            format,
        }
    }

    fn from_digits(digits: &[u8], exp: i64) -> Quantity {
        Quantity {
            neg: false,
            digits: digits.to_vec(),
            exp,
            format: QuantityFormat::DecimalSI,
        }
    }

    /// No leading or trailing zeros; 0 is positive.
    fn normalise(&mut self) {
        let lead = self.digits.iter().take_while(|d| **d == 0).count();
        self.digits.drain(..lead);
        while self.digits.last() == Some(&0) {
            self.digits.pop();
            self.exp += 1;
        }
        if self.digits.is_empty() {
            self.neg = false;
            self.exp = 0;
        }
    }

    /// The format it was written in (`Quantity.Format`; a binary-suffixed value below 1 is
    /// `DecimalSI`, as `ParseQuantity` makes it).
    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    /// The sign: -1, 0 or 1 (`Quantity.Sign`).
    pub fn sign(&self) -> i8 {
        match (self.digits.is_empty(), self.neg) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }

    /// The value rounded up, away from zero, to a multiple of `10^scale` (`Quantity.RoundUp`,
    /// `inf.RoundUp`).
    pub fn round_up(&self, scale: i64) -> Quantity {
        let mut q = self.clone();
        if q.digits.is_empty() || q.exp >= scale {
            return q;
        }
        let cut = (scale - q.exp) as usize;
        // the digits cut off are not all 0 (no trailing zeros), so the kept part goes up by one
        let keep = q.digits.len().saturating_sub(cut);
        q.digits.truncate(keep);
        q.exp = scale;
        add_one(&mut q.digits);
        q.normalise();
        q
    }

    /// Compares the absolute values.
    fn cmp_magnitude(&self, o: &Quantity) -> Ordering {
        match (self.digits.is_empty(), o.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // the position of the leading digit, then the digits from there
        let top = |q: &Quantity| q.digits.len() as i64 + q.exp;
        top(self).cmp(&top(o)).then_with(|| {
            let n = self.digits.len().max(o.digits.len());
            let at = |q: &Quantity, i: usize| q.digits.get(i).copied().unwrap_or(0);
            (0..n)
                .map(|i| at(self, i).cmp(&at(o, i)))
                .find(|c| c.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }

    /// The value × 10^`digits` rounded up away from zero (`Quantity.ScaledValue`), saturated at
    /// the bounds of `i128`.
    pub fn scaled(&self, digits: i64) -> i128 {
        let q = self.round_up(-digits);
        let mut v: i128 = 0;
        let zeros = q.exp + digits;
        let saturated = if q.neg { i128::MIN } else { i128::MAX };
        for d in q
            .digits
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0, zeros.max(0) as usize))
        {
            match v.checked_mul(10).and_then(|v| v.checked_add(i128::from(d))) {
                Some(n) => v = n,
                None => return saturated,
            }
        }
        if q.neg {
            -v
        } else {
            v
        }
    }

    /// The exact sum (`Quantity.Add`): its format is this quantity's, or `o`'s when this one
    /// is 0 (Go's zero `Quantity` takes the format of what is added to it).
    pub fn add(&self, o: &Quantity) -> Quantity {
        let format = if self.sign() == 0 {
            o.format
        } else {
            self.format
        };
        if o.digits.is_empty() || self.digits.is_empty() {
            let mut q = if o.digits.is_empty() {
                self.clone()
            } else {
                o.clone()
            };
            q.format = format;
            return q;
        }
        // both at the smaller exponent, as many digits long
        let exp = self.exp.min(o.exp);
        let widen = |q: &Quantity| {
            let mut d = q.digits.clone();
            d.extend(std::iter::repeat_n(0, (q.exp - exp) as usize));
            d
        };
        let (a, b) = (widen(self), widen(o));
        let width = a.len().max(b.len());
        let pad = |mut d: Vec<u8>| {
            let mut v = vec![0; width - d.len()];
            v.append(&mut d);
            v
        };
        let (a, b) = (pad(a), pad(b));
        let (neg, digits) = if self.neg == o.neg {
            // |a| + |b|
            let mut out = vec![0u8; width + 1];
            let mut carry = 0;
            for i in (0..width).rev() {
                let s = a[i] + b[i] + carry;
                out[i + 1] = s % 10;
                carry = s / 10;
            }
            out[0] = carry;
            (self.neg, out)
        } else {
            // the larger magnitude minus the smaller, with the larger's sign
            let (big, small, neg) = if a >= b {
                (&a, &b, self.neg)
            } else {
                (&b, &a, o.neg)
            };
            let mut out = vec![0u8; width];
            let mut borrow = 0i8;
            for i in (0..width).rev() {
                let mut d = big[i] as i8 - small[i] as i8 - borrow;
                borrow = i8::from(d < 0);
                if d < 0 {
                    d += 10;
                }
                out[i] = d as u8;
            }
            (neg, out)
        };
        let mut q = Quantity {
            neg,
            digits,
            exp,
            format,
        };
        q.normalise();
        q
    }

    /// The value with the opposite sign (`Quantity.Neg`).
    pub fn neg(&self) -> Quantity {
        let mut q = self.clone();
        q.neg = !q.neg && !q.digits.is_empty();
        q
    }

    /// The one spelling equal values share (`Quantity.Cmp` == 0): `[-]<digits>e<exp>`, or `0`.
    pub fn key(&self) -> String {
        if self.digits.is_empty() {
            return "0".into();
        }
        let d: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        format!("{}{d}e{}", if self.neg { "-" } else { "" }, self.exp)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Quantity {
    /// `Quantity.Cmp`: by value, whatever the format.
    fn cmp(&self, o: &Self) -> Ordering {
        match self.sign().cmp(&o.sign()) {
            Ordering::Equal if self.neg => o.cmp_magnitude(self),
            Ordering::Equal => self.cmp_magnitude(o),
            c => c,
        }
    }
}

/// `digits` × `m` in place (decimal digits, most significant first).
fn mul_small(digits: &mut Vec<u8>, m: u32) {
    let mut carry = 0u32;
    for d in digits.iter_mut().rev() {
        let v = u32::from(*d) * m + carry;
        *d = (v % 10) as u8;
        carry = v / 10;
    }
    while carry > 0 {
        digits.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

/// `digits` + 1 in place.
fn add_one(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == 9 {
            *d = 0;
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, 1);
}

/// A Kubernetes quantity in milli-units, rounded up away from zero
/// (`resource.Quantity.MilliValue`; compare [`Quantity`]s, not these, for equality), saturated at the bounds of `i128`. `None` when the text is
/// not a quantity.
pub fn quantity_milli(q: &str) -> Option<i128> {
    Quantity::parse(q).map(|q| q.scaled(3))
}

/// A Kubernetes quantity in its base units (cores, bytes), rounded up away from zero
/// (`resource.Quantity.Value`), saturated at the bounds of `i128`. `None` when the text is not a
/// quantity.
pub fn quantity_value(q: &str) -> Option<i128> {
    Quantity::parse(q).map(|q| q.scaled(0))
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

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("{s} is a quantity"))
    }

    #[test]
    fn quantities_compare_as_quantity_cmp() {
        let eq = |a: &str, b: &str| q(a) == q(b) && q(a).key() == q(b).key();
        let cmp = |a: &str, b: &str| q(a).cmp(&q(b));
        assert!(eq("1", "1000m"));
        assert!(eq("1Gi", "1024Mi"));
        assert!(eq("1Gi", "1073741824"));
        assert!(eq("1k", "1e3"));
        assert!(eq("0.5", "500m"));
        assert!(eq("1m", "1000000n"));
        assert!(eq("0", "-0"));
        assert!(!eq("1", "2"));
        assert!(!eq("1G", "1Gi"));
        // below a milli-unit values still differ (nano is a quantity's precision), and a value
        // finer than nano is rounded up (away from zero) to it as ParseQuantity does
        assert!(!eq("1n", "2n"));
        assert!(eq("0.0000000001", "1n"));
        assert!(eq("-0.0000000001", "-1n"));
        // values past any machine integer compare exactly: they never saturate into equality
        assert!(!eq("1e30", "2e30"));
        assert!(eq("1e30", "1000000000000000000000000000000"));
        assert!(!eq("1e40", "1e41"));
        assert!(!eq(
            "123456789012345678901234567890123456789012",
            "123456789012345678901234567890123456789013"
        ));
        assert_eq!(cmp("1e30", "2e30"), Ordering::Less);
        assert_eq!(cmp("-1e30", "-2e30"), Ordering::Greater);
        assert_eq!(cmp("-1", "1m"), Ordering::Less);
        assert_eq!(cmp("1.5", "1500m"), Ordering::Equal);
        // a binary-suffixed value is capped at math.MaxInt64 (decimal ones are not)
        assert!(eq("8Ei", "9223372036854775807"));
        assert!(eq("100000Ei", "9223372036854775807"));
        assert!(eq("-100000Ei", "-9223372036854775807"));
        assert!(!eq("9223372036854775808", "9223372036854775807"));
        assert_eq!(q("0.5Ki").scaled(0), 512);
        assert_eq!(q("1Ki").format(), QuantityFormat::BinarySI);
        assert_eq!(q("1e3").format(), QuantityFormat::DecimalExponent);
        assert_eq!(q("1k").format(), QuantityFormat::DecimalSI);
        assert_eq!(q("1E").format(), QuantityFormat::DecimalSI);
        assert_eq!(q("1E").scaled(0), 1_000_000_000_000_000_000);
    }

    /// `parseQuantityString`'s grammar: one sign, one suffix; a number without digits is 0.
    #[test]
    fn quantity_grammar() {
        for bad in [
            "", " ", "+-1", "--1", "-+1", "1e++3", "1e+-3", "1e3m", "1ki", "1Ki3", "1e", "1ee3",
            "1.5.5", "1 k", "x", "5x", "1m3", "0x1", "e-20",
        ] {
            assert_eq!(Quantity::parse(bad), None, "{bad:?}");
        }
        for (zero, sign) in [
            ("-", 0),
            ("+", 0),
            ("000", 0),
            ("k", 0),
            (".", 0),
            ("-0.0", 0),
        ] {
            assert_eq!(q(zero).sign(), sign, "{zero:?}");
        }
        assert_eq!(q(" 1 ").scaled(0), 1);
        assert_eq!(q("+1").scaled(0), 1);
        assert_eq!(q("1e+3").scaled(0), 1000);
        assert_eq!(q("1E-3").scaled(3), 1);
        assert_eq!(q("1.").scaled(0), 1);
        assert_eq!(q(".5").scaled(3), 500);
    }

    #[test]
    fn scaled_values() {
        assert_eq!(quantity_value("1.5"), Some(2));
        assert_eq!(quantity_value("-1.5"), Some(-2));
        assert_eq!(quantity_value("1Ki"), Some(1024));
        assert_eq!(quantity_value("100m"), Some(1));
        assert_eq!(quantity_value("-2e40"), Some(i128::MIN));
        assert_eq!(quantity_value("2e40"), Some(i128::MAX));
        assert_eq!(quantity_value("1e2147483647"), Some(i128::MAX));
        assert_eq!(quantity_value("5x"), None);
        assert_eq!(quantity_value(""), None);
        // milli-units rounded up away from zero, as Quantity.RoundUp(-3)
        assert_eq!(q("1.0001").round_up(-3).key(), q("1001m").key());
        assert_eq!(q("-1.0001").round_up(-3).key(), q("-1001m").key());
        assert_eq!(q("1n").round_up(-3).key(), q("1m").key());
        assert_eq!(q("1e30").round_up(-3).key(), q("1e30").key());
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

    #[test]
    fn sums_are_exact_and_keep_the_first_non_zero_format() {
        let sum = |a: &str, b: &str| q(a).add(&q(b));
        assert_eq!(sum("100m", "900m"), q("1"));
        assert_eq!(sum("1Gi", "1Gi"), q("2Gi"));
        assert_eq!(sum("1Gi", "1Gi").format(), QuantityFormat::BinarySI);
        assert_eq!(sum("0", "1Gi").format(), QuantityFormat::BinarySI);
        assert_eq!(sum("1", "1Gi").format(), QuantityFormat::DecimalSI);
        assert_eq!(sum("1e30", "1e30"), q("2e30"));
        assert_eq!(sum("1", "-3"), q("-2"));
        assert_eq!(sum("-1", "3"), q("2"));
        assert_eq!(sum("250m", "-250m").sign(), 0);
        assert_eq!(sum("0.000000001", "999999999n"), q("1"));
        assert_eq!(q("5").neg(), q("-5"));
        assert_eq!(q("0").neg().sign(), 0);
    }
}
