//! Kubernetes resource quantities (`128Mi`, `500m`, `1.5G`, `2e3`): parsed
//! exactly, in billionths, so `0.1` CPU is 100 millicores and `128M`
//! memory is 128,000,000 bytes without floating-point drift.

use std::fmt;

/// A parsed quantity, in units of 10⁻⁹.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

/// Why a quantity string is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression \
     '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {0:?})"
)]
pub struct ParseError(pub String);

const NANO: i128 = 1_000_000_000;

/// How a quantity is written back, as Kubernetes keeps it with the value:
/// `1Gi` stays binary, `1e3` exponential, everything else decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

impl Format {
    /// The format `text` (a valid quantity) is written in.
    pub fn of(text: &str) -> Format {
        let suffix = text.trim().trim_start_matches(['+', '-']);
        let suffix = &suffix[suffix
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(suffix.len())..];
        if suffix.ends_with('i') {
            Format::BinarySi
        } else if suffix.starts_with(['e', 'E']) && suffix.len() > 1 {
            Format::DecimalExponent
        } else {
            Format::DecimalSi
        }
    }
}

impl Quantity {
    /// Parses a quantity as Kubernetes writes them.
    pub fn parse(text: &str) -> Result<Quantity, ParseError> {
        let err = || ParseError(text.to_string());
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err());
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        // (multiplier numerator, power of ten) applied to the number.
        let (mul, exp10): (i128, i32) = match suffix {
            "" => (1, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            s if s.starts_with(['e', 'E']) => {
                let e: i32 = s[1..].parse().map_err(|_| err())?;
                if !(-30..=30).contains(&e) {
                    return Err(err());
                }
                (1, e)
            }
            _ => return Err(err()),
        };
        // digits as an integer, scaled so that value = digits * 10^(exp10 - frac_len) * mul.
        let digits: String = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(err());
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err())?
        };
        let power = exp10 - frac_part.len() as i32 + 9;
        let scaled = if power >= 0 {
            mantissa.checked_mul(10i128.checked_pow(power as u32).ok_or_else(err)?)
        } else {
            // Below a nano: round up, as Kubernetes does.
            let div = 10i128.checked_pow((-power) as u32).ok_or_else(err)?;
            Some((mantissa + div - 1) / div)
        }
        .and_then(|v| v.checked_mul(mul))
        .ok_or_else(err)?;
        Ok(Quantity {
            nanos: if negative { -scaled } else { scaled },
        })
    }

    /// The value rounded up to a whole number (bytes, for memory).
    pub fn ceil_units(&self) -> i128 {
        (self.nanos + NANO - 1).div_euclid(NANO)
    }

    /// The value in thousandths rounded up (millicores, for CPU).
    pub fn ceil_millis(&self) -> i128 {
        let milli = NANO / 1000;
        (self.nanos + milli - 1).div_euclid(milli)
    }

    /// `self / divisor` rounded up, as the downward API reports resources
    /// (`limits.memory` with divisor `1Mi`); `None` for a divisor of zero.
    pub fn ceil_div(&self, divisor: &Quantity) -> Option<i128> {
        if divisor.nanos <= 0 {
            return None;
        }
        Some((self.nanos + divisor.nanos - 1).div_euclid(divisor.nanos))
    }

    /// A whole number of units.
    pub fn from_units(units: i128) -> Quantity {
        Quantity {
            nanos: units * NANO,
        }
    }

    /// A number of billionths (nanocores).
    pub fn from_nanos(nanos: i128) -> Quantity {
        Quantity { nanos }
    }

    /// A number of thousandths (millicores).
    pub fn from_millis(millis: i128) -> Quantity {
        Quantity {
            nanos: millis * (NANO / 1000),
        }
    }

    /// True below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// True at zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The sum.
    pub fn plus(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }

    /// The difference.
    pub fn minus(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
        }
    }

    /// The value as the API server writes it in `format`: the shortest
    /// exact form, so `0.5` is `500m`, `1000` is `1k` (`1e3` in
    /// exponent form) and `1048576` binary is `1Mi`; a binary value
    /// below 1024 or with a fraction is written in decimal.
    pub fn canonical(&self, format: Format) -> String {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let nanos = self.nanos.unsigned_abs();
        if nanos == 0 {
            return "0".into();
        }
        let whole = nanos.is_multiple_of(NANO as u128);
        if format == Format::BinarySi && whole && nanos / NANO as u128 >= 1024 {
            let mut units = nanos / NANO as u128;
            let mut suffix = 0;
            while units.is_multiple_of(1024) && suffix < 6 {
                units /= 1024;
                suffix += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][suffix];
            return format!("{sign}{units}{suffix}");
        }
        // The largest power of a thousand (from 10⁻⁹ up) that divides the
        // value exactly.
        let mut mantissa = nanos;
        let mut exponent = -9;
        while mantissa.is_multiple_of(1000) && exponent < 18 {
            mantissa /= 1000;
            exponent += 3;
        }
        let suffix = match format {
            Format::DecimalExponent if exponent == 0 => String::new(),
            Format::DecimalExponent => format!("e{exponent}"),
            _ => match exponent {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            }
            .to_string(),
        };
        format!("{sign}{mantissa}{suffix}")
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANO == 0 {
            write!(f, "{}", self.nanos / NANO)
        } else {
            write!(f, "{}m", self.ceil_millis())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> i128 {
        Quantity::parse(s).unwrap().ceil_units()
    }

    #[test]
    fn memory_suffixes() {
        assert_eq!(units("128Mi"), 128 << 20);
        assert_eq!(units("128M"), 128_000_000);
        assert_eq!(units("64M"), 64_000_000);
        assert_eq!(units("1Gi"), 1 << 30);
        assert_eq!(units("1.5Gi"), 3 << 29);
        assert_eq!(units("1e3"), 1000);
        assert_eq!(units("12E-1"), 2);
        assert_eq!(units("2k"), 2000);
        assert_eq!(units("100"), 100);
    }

    #[test]
    fn cpu() {
        assert_eq!(Quantity::parse("500m").unwrap().ceil_millis(), 500);
        assert_eq!(Quantity::parse("0.2").unwrap().ceil_millis(), 200);
        assert_eq!(Quantity::parse("2").unwrap().ceil_millis(), 2000);
        assert_eq!(Quantity::parse("250000u").unwrap().ceil_millis(), 250);
        assert_eq!(Quantity::parse("1n").unwrap().ceil_millis(), 1);
    }

    #[test]
    fn canonical_forms() {
        let canonical = |text: &str| Quantity::parse(text).unwrap().canonical(Format::of(text));
        for (text, expected) in [
            ("0.5", "500m"),
            ("2", "2"),
            ("1024m", "1024m"),
            ("768m", "768m"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1.5k", "1500"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("512", "512"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("0", "0"),
            ("-500m", "-500m"),
            ("128M", "128M"),
        ] {
            assert_eq!(canonical(text), expected, "{text}");
        }
        let sum = Quantity::parse("768m")
            .unwrap()
            .plus(Quantity::parse("512m").unwrap());
        assert_eq!(sum.canonical(Format::DecimalSi), "1280m");
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "Mi", "12MB", "1.2.3", "abc", "5 m", "1e99", "--1"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Quantity::parse("-1").unwrap().is_negative());
    }
}
