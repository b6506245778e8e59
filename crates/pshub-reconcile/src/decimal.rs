//! Decimal numbers as exports write them, compared and added exactly.
//!
//! [`Dec`] is a number as written (`7.5`, `-12`, `.25`, `+3.00`), borrowed from the text it
//! was read from: reading one and comparing two allocate nothing, and `7.5` equals `7.50`.
//! [`Exact`] is a number to compute with (a difference, a sum): an `i128` count of units of
//! 10^-scale, whose arithmetic is checked, so that a result is exact or an error, never
//! rounded. Exponents (`1e2`), spaces, and signs or points alone are not numbers.

use std::cmp::Ordering;
use std::fmt;

/// The most significant digits before the point, and the most digits after it. Within both,
/// a number is an `Exact` of at most 36 digits, and the sum of a billion of them still fits.
pub const MAX_WHOLE_DIGITS: usize = 18;
pub const MAX_FRACTION_DIGITS: usize = 18;

/// Why a text is not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecError {
    /// Not of the form `[+-]digits[.digits]`.
    NotANumber,
    /// More digits than [`MAX_WHOLE_DIGITS`] or [`MAX_FRACTION_DIGITS`].
    TooManyDigits,
}

impl fmt::Display for DecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecError::NotANumber => f.write_str("is not a decimal number"),
            DecError::TooManyDigits => write!(
                f,
                "has more than {MAX_WHOLE_DIGITS} digits before the point or \
                 {MAX_FRACTION_DIGITS} after it"
            ),
        }
    }
}

/// A decimal number as written: its sign, its whole digits without leading zeros and its
/// fraction digits as written (trailing zeros kept, so that it prints as it was written).
#[derive(Debug, Clone, Copy)]
pub struct Dec<'a> {
    negative: bool,
    whole: &'a [u8],
    fraction: &'a [u8],
}

impl<'a> Dec<'a> {
    /// Reads `[+-]digits[.digits]`, with at least one digit (`.5` and `5.` are numbers).
    pub fn parse(text: &'a [u8]) -> Result<Self, DecError> {
        let (negative, rest) = match text.first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        // One pass: every byte a digit but one point at most.
        let mut point = None;
        for (at, &byte) in rest.iter().enumerate() {
            if byte == b'.' && point.is_none() {
                point = Some(at);
            } else if !byte.is_ascii_digit() {
                return Err(DecError::NotANumber);
            }
        }
        let (whole, fraction) = match point {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(DecError::NotANumber);
        }
        let leading_zeros = whole.iter().take_while(|&&b| b == b'0').count();
        let whole = &whole[leading_zeros..];
        if whole.len() > MAX_WHOLE_DIGITS || fraction.len() > MAX_FRACTION_DIGITS {
            return Err(DecError::TooManyDigits);
        }
        Ok(Dec {
            negative,
            whole,
            fraction,
        })
    }

    /// The fraction digits without trailing zeros.
    fn significant_fraction(&self) -> &'a [u8] {
        let zeros = self
            .fraction
            .iter()
            .rev()
            .take_while(|&&b| b == b'0')
            .count();
        &self.fraction[..self.fraction.len() - zeros]
    }

    pub fn is_zero(&self) -> bool {
        self.whole.is_empty() && self.significant_fraction().is_empty()
    }

    /// Equal as numbers: `7.5` and `7.50`, `-0` and `0`, `007` and `7` are.
    pub fn same_value(&self, other: &Dec<'_>) -> bool {
        let (a, b) = (self.is_zero(), other.is_zero());
        if a || b {
            return a && b;
        }
        self.negative == other.negative
            && self.whole == other.whole
            && self.significant_fraction() == other.significant_fraction()
    }

    /// The number to compute with, at the scale it was written with.
    pub fn exact(&self) -> Exact {
        let units = self
            .whole
            .iter()
            .chain(self.fraction)
            .fold(0i128, |units, &digit| units * 10 + i128::from(digit - b'0'));
        Exact {
            units: if self.negative { -units } else { units },
            scale: self.fraction.len() as u32,
        }
    }

    /// Writes the number in its plain form: `+07.50` as `7.50`, `.5` as `0.5`, `-0` as `0`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.negative && !self.is_zero() {
            out.push(b'-');
        }
        if self.whole.is_empty() {
            out.push(b'0');
        } else {
            out.extend_from_slice(self.whole);
        }
        if !self.fraction.is_empty() {
            out.push(b'.');
            out.extend_from_slice(self.fraction);
        }
    }
}

/// An exact decimal: `units` × 10^-`scale`. Arithmetic is checked and never rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exact {
    units: i128,
    scale: u32,
}

impl Exact {
    pub const ZERO: Exact = Exact { units: 0, scale: 0 };

    /// The units at a larger scale, or `None` when they do not fit.
    fn at_scale(self, scale: u32) -> Option<i128> {
        10i128
            .checked_pow(scale - self.scale)
            .and_then(|factor| self.units.checked_mul(factor))
    }

    /// `self + other` at the larger of the two scales, or `None` when it does not fit.
    pub fn checked_add(self, other: Exact) -> Option<Exact> {
        let scale = self.scale.max(other.scale);
        let units = self.at_scale(scale)?.checked_add(other.at_scale(scale)?)?;
        Some(Exact { units, scale })
    }

    /// `self - other` at the larger of the two scales, or `None` when it does not fit.
    pub fn checked_sub(self, other: Exact) -> Option<Exact> {
        let scale = self.scale.max(other.scale);
        let units = self.at_scale(scale)?.checked_sub(other.at_scale(scale)?)?;
        Some(Exact { units, scale })
    }

    /// Compares as numbers (`7.5` equals `7.50`); `None` only when a rescale overflows.
    pub fn checked_cmp(self, other: Exact) -> Option<Ordering> {
        let scale = self.scale.max(other.scale);
        Some(self.at_scale(scale)?.cmp(&other.at_scale(scale)?))
    }
}

impl fmt::Display for Exact {
    /// All the digits of the scale: `12.50`, `-0.25`, `3`; zero has no sign.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.units.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let sign = if self.units < 0 { "-" } else { "" };
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(text: &str) -> Dec<'_> {
        Dec::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn plain(text: &str) -> String {
        let mut out = Vec::new();
        dec(text).write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_as_exports_write_them_are_read() {
        for (text, written) in [
            ("7.5", "7.5"),
            ("7.50", "7.50"),
            ("+7.50", "7.50"),
            ("007", "7"),
            (".5", "0.5"),
            ("5.", "5"),
            ("-12.25", "-12.25"),
            ("-0.00", "0.00"),
            ("0", "0"),
        ] {
            assert_eq!(plain(text), written, "{text}");
            assert_eq!(dec(text).exact().to_string(), written, "{text}");
        }
    }

    #[test]
    fn what_is_not_a_plain_decimal_is_refused() {
        for text in [
            "", "-", "+", ".", "1e2", "1E2", "7,5", " 7.5", "7.5 ", "1.2.3", "--1", "0x10", "NaN",
            "inf", "½",
        ] {
            assert_eq!(
                Dec::parse(text.as_bytes()).err(),
                Some(DecError::NotANumber),
                "{text:?}"
            );
        }
        let long_whole = "1".repeat(MAX_WHOLE_DIGITS + 1);
        let long_fraction = format!("0.{}", "1".repeat(MAX_FRACTION_DIGITS + 1));
        for text in [long_whole.as_str(), long_fraction.as_str()] {
            assert_eq!(
                Dec::parse(text.as_bytes()).err(),
                Some(DecError::TooManyDigits)
            );
        }
        // Leading zeros are not significant digits.
        let padded = format!("{}1", "0".repeat(40));
        assert_eq!(dec(&padded).exact().to_string(), "1");
    }

    #[test]
    fn equality_is_of_the_value_not_the_text() {
        for (a, b, same) in [
            ("7.5", "7.50", true),
            ("7.5", "7.51", false),
            ("7", "7.000", true),
            ("07.5", "7.5", true),
            ("-0", "0.00", true),
            ("-1", "1", false),
            ("0.1", "0.01", false),
            ("10", "1", false),
            ("1.10", "1.1", true),
            ("100", "100.0", true),
        ] {
            assert_eq!(dec(a).same_value(&dec(b)), same, "{a} vs {b}");
            assert_eq!(dec(b).same_value(&dec(a)), same, "{b} vs {a}");
        }
    }

    #[test]
    fn arithmetic_keeps_the_larger_scale_and_is_exact() {
        let sum = dec("1125.00").exact().checked_add(dec("10.5").exact());
        assert_eq!(sum.unwrap().to_string(), "1135.50");
        let diff = dec("10.5").exact().checked_sub(dec("10.75").exact());
        assert_eq!(diff.unwrap().to_string(), "-0.25");
        assert_eq!(
            dec("0.1").exact().checked_sub(dec("0.10").exact()),
            Some(Exact { units: 0, scale: 2 })
        );
        assert_eq!(
            Exact::ZERO
                .checked_add(dec("-3").exact())
                .unwrap()
                .to_string(),
            "-3"
        );
        let big = Exact {
            units: i128::MAX,
            scale: 0,
        };
        assert_eq!(big.checked_add(dec("1").exact()), None);
        assert_eq!(
            big.checked_add(dec("0.5").exact()),
            None,
            "a rescale that overflows"
        );
    }

    proptest! {
        /// Numbers equal as decimals exactly when their exact values compare equal, however
        /// they are padded with zeros.
        #[test]
        fn same_value_agrees_with_exact_comparison(
            a in -100_000i64..100_000, b in -100_000i64..100_000,
            a_scale in 0u32..4, b_scale in 0u32..4,
            a_pad in 0usize..3, b_pad in 0usize..3,
        ) {
            let text = |units: i64, scale: u32, pad: usize| {
                let magnitude = units.unsigned_abs().to_string();
                let magnitude = format!("{magnitude:0>width$}", width = scale as usize + 1);
                let (whole, fraction) = magnitude.split_at(magnitude.len() - scale as usize);
                let sign = if units < 0 { "-" } else { "" };
                let zeros = "0".repeat(pad);
                if scale == 0 && pad == 0 {
                    format!("{sign}{whole}")
                } else {
                    format!("{sign}{whole}.{fraction}{zeros}")
                }
            };
            let (ta, tb) = (text(a, a_scale, a_pad), text(b, b_scale, b_pad));
            let (da, db) = (dec(&ta), dec(&tb));
            let exact_equal = da.exact().checked_cmp(db.exact()) == Some(Ordering::Equal);
            prop_assert_eq!(da.same_value(&db), exact_equal, "{} vs {}", ta, tb);
            prop_assert_eq!(da.exact().to_string(), plain(&ta));
        }
    }
}
