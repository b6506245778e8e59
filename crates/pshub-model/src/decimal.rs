//! Exact decimals from text, and the bounds each kind of decimal field keeps.
//!
//! A decimal is read exactly or refused: `1.0000000000000000000000000000000000000001` does not
//! fit in 28 decimal places, so it is refused rather than rounded to `1`, and `1e30` does not
//! fit in 96 bits, so it is refused rather than saturated. The bounds keep every product the
//! flows compute (hours x rate x FX rate) far inside what a `Decimal` holds, so that pricing
//! cannot overflow on any input that was accepted.

use rust_decimal::Decimal;

/// The most decimal places a `Decimal` holds.
const MAX_SCALE: u32 = 28;

/// Parses a decimal written as `-12.5`, `7`, `.5`, `1e-3` or `2.5E+2`, exactly. Trailing
/// zeros after the point are dropped (`7.50` reads as `7.5`).
pub fn parse_exact(text: &str) -> Result<Decimal, String> {
    let not_a_number = || format!("'{}' is not a decimal number", shorten(text));
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (number, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
        return Err(not_a_number());
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
            if unsigned.is_empty() || !digits_only(unsigned) {
                return Err(not_a_number());
            }
            // Exponents past a few thousand can only mean overflow or underflow.
            if unsigned.len() > 6 {
                return Err(format!("'{}' is out of range", shorten(text)));
            }
            e.parse().map_err(|_| not_a_number())?
        }
    };
    // All significant digits, without leading zeros; the scale counts fraction digits.
    let mut digits: String = whole.chars().chain(fraction.chars()).collect();
    let mut scale = fraction.len() as i64 - exponent;
    while digits.len() > 1 && digits.starts_with('0') {
        digits.remove(0);
    }
    while scale > 0 && digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
        scale -= 1;
    }
    if digits == "0" {
        return Ok(Decimal::ZERO);
    }
    if scale < 0 {
        // A positive exponent beyond the fraction: whole zeros to append.
        if digits.len() as i64 - scale > 29 {
            return Err(format!("'{}' is too large to hold exactly", shorten(text)));
        }
        digits.extend(std::iter::repeat_n('0', (-scale) as usize));
        scale = 0;
    }
    if scale > i64::from(MAX_SCALE) {
        return Err(format!(
            "'{}' has more than {MAX_SCALE} decimal places and cannot be held exactly",
            shorten(text)
        ));
    }
    if digits.len() > 29 {
        return Err(format!(
            "'{}' has more than 29 significant digits and cannot be held exactly",
            shorten(text)
        ));
    }
    let mantissa: i128 = digits.parse().map_err(|_| not_a_number())?;
    let mantissa = if negative { -mantissa } else { mantissa };
    Decimal::try_from_i128_with_scale(mantissa, scale as u32)
        .map(|d| d.normalize())
        .map_err(|_| format!("'{}' is too large to hold exactly", shorten(text)))
}

fn shorten(text: &str) -> &str {
    &text[..text.floor_char_boundary(48)]
}

/// The lowest value a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// Zero or more.
    Zero,
    /// More than zero.
    AboveZero,
}

/// What a decimal field may hold: its floor, its ceiling and its decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub floor: Floor,
    /// The value must be at most this (`inclusive`) or below it.
    pub ceiling: Decimal,
    pub inclusive: bool,
    pub max_places: u32,
}

/// 10^12: rates and amounts stay below it.
pub const TRILLION: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

impl Bounds {
    /// Hours of one time entry: more than 0, at most 24.
    pub const HOURS: Bounds = Bounds {
        floor: Floor::AboveZero,
        ceiling: Decimal::from_parts(24, 0, 0, false, 0),
        inclusive: true,
        max_places: MAX_SCALE,
    };
    /// A bill or cost rate: zero or more, below 10^12, at most 6 decimal places.
    pub const RATE: Bounds = Bounds {
        floor: Floor::Zero,
        ceiling: TRILLION,
        inclusive: false,
        max_places: 6,
    };
    /// An amount of money: more than zero, below 10^12, at most 6 decimal places.
    pub const AMOUNT: Bounds = Bounds {
        floor: Floor::AboveZero,
        ceiling: TRILLION,
        inclusive: false,
        max_places: 6,
    };
    /// An amount that may be zero (a gross cost).
    pub const AMOUNT_OR_ZERO: Bounds = Bounds {
        floor: Floor::Zero,
        ..Bounds::AMOUNT
    };
    /// An FX rate: more than zero, below 10^12, at most 12 decimal places.
    pub const FX_RATE: Bounds = Bounds {
        floor: Floor::AboveZero,
        ceiling: TRILLION,
        inclusive: false,
        max_places: 12,
    };
    /// Available hours in a week: zero or more, at most 168.
    pub const HOURS_PER_WEEK: Bounds = Bounds {
        floor: Floor::Zero,
        ceiling: Decimal::from_parts(168, 0, 0, false, 0),
        inclusive: true,
        max_places: 6,
    };
    /// A multiplier (of overtime cost or bill): more than zero, at most 100.
    pub const MULTIPLIER: Bounds = Bounds {
        floor: Floor::AboveZero,
        ceiling: Decimal::from_parts(100, 0, 0, false, 0),
        inclusive: true,
        max_places: 6,
    };
    /// Planned hours of an assignment: zero or more, below 10^12.
    pub const PLANNED_HOURS: Bounds = Bounds {
        floor: Floor::Zero,
        ceiling: TRILLION,
        inclusive: false,
        max_places: 6,
    };

    /// Checks `value` against the bounds; the error says which bound it breaks.
    pub fn check(&self, value: Decimal) -> Result<Decimal, String> {
        match self.floor {
            Floor::Zero if value.is_sign_negative() && !value.is_zero() => {
                return Err(format!("must not be negative, got {value}"));
            }
            Floor::AboveZero if value <= Decimal::ZERO => {
                return Err(format!("must be greater than zero, got {value}"));
            }
            _ => {}
        }
        let over = if self.inclusive {
            value > self.ceiling
        } else {
            value >= self.ceiling
        };
        if over {
            let relation = if self.inclusive { "at most" } else { "below" };
            let ceiling = if self.ceiling == TRILLION {
                "10^12".to_string()
            } else {
                self.ceiling.to_string()
            };
            return Err(format!("must be {relation} {ceiling}, got {value}"));
        }
        if value.scale() > self.max_places {
            return Err(format!(
                "has {} decimal places; at most {} are allowed, got {value}",
                value.scale(),
                self.max_places
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<&str, &str>) {
        let got = parse_exact(text).map(|d| d.to_string());
        match expected {
            Ok(value) => assert_eq!(got.as_deref(), Ok(value), "{text}"),
            Err(part) => {
                let error = got.expect_err(text);
                assert!(error.contains(part), "{text}: {error}");
            }
        }
    }

    #[test]
    fn reads_exactly_or_refuses() {
        check("7.5", Ok("7.5"));
        check("7.50", Ok("7.5"));
        check("-0.25", Ok("-0.25"));
        check(".5", Ok("0.5"));
        check("5.", Ok("5"));
        check("+3", Ok("3"));
        check("0", Ok("0"));
        check("000.000", Ok("0"));
        check("1e-28", Ok("0.0000000000000000000000000001"));
        check("2.5E+2", Ok("250"));
        check("1.000000000000000000000000000000000000000", Ok("1"));
        check(
            "79228162514264337593543950335",
            Ok("79228162514264337593543950335"),
        );
        check(
            "1.0000000000000000000000000000000000000001",
            Err("cannot be held exactly"),
        );
        check("1e-29", Err("cannot be held exactly"));
        check("79228162514264337593543950336", Err("too large"));
        check("1e30", Err("too large"));
        check("1e99999999", Err("out of range"));
        check("7,5", Err("not a decimal number"));
        check("", Err("not a decimal number"));
        check(".", Err("not a decimal number"));
        check("1e", Err("not a decimal number"));
        check("0x10", Err("not a decimal number"));
        check("NaN", Err("not a decimal number"));
        check(" 1", Err("not a decimal number"));
    }

    #[test]
    fn bounds_name_the_limit() {
        let value = |t: &str| parse_exact(t).unwrap();
        assert!(Bounds::HOURS.check(value("24")).is_ok());
        assert!(
            Bounds::HOURS
                .check(value("24.01"))
                .unwrap_err()
                .contains("at most 24")
        );
        assert!(
            Bounds::HOURS
                .check(value("0"))
                .unwrap_err()
                .contains("greater than zero")
        );
        assert!(
            Bounds::RATE
                .check(value("79228162514264337593543950335"))
                .unwrap_err()
                .contains("below 10^12")
        );
        assert!(Bounds::RATE.check(value("999999999999.999999")).is_ok());
        assert!(
            Bounds::RATE
                .check(value("1.0000001"))
                .unwrap_err()
                .contains("at most 6")
        );
        assert!(Bounds::FX_RATE.check(value("1.000000000001")).is_ok());
        assert_eq!(TRILLION, value("1000000000000"));
    }
}
