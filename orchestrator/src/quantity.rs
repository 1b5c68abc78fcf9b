//! Kubernetes resource quantities (`128Mi`, `500m`, `1.5G`, `2e3`): parsed
//! exactly, in billionths, so `0.1` CPU is 100 millicores and `128M`
//! memory is 128,000,000 bytes without floating-point drift.

use std::fmt;

/// A parsed quantity, in units of 10⁻⁹.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    fn garbage_is_refused() {
        for bad in ["", "Mi", "12MB", "1.2.3", "abc", "5 m", "1e99", "--1"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Quantity::parse("-1").unwrap().is_negative());
    }
}
