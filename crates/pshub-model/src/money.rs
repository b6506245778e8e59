//! Exact money: a decimal amount with its currency. Never floating point.

use crate::Currency;
use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt;

/// Rounds half away from zero to the currency's minor unit. This is the only rounding
/// rule in pshub, applied at exactly two points: the value of an entry
/// (hours x bill rate, in the rate's currency) and its conversion into the billing
/// currency (value x FX rate).
pub fn round_to_minor_unit(amount: Decimal, currency: Currency) -> Decimal {
    let units = currency.minor_units();
    let mut rounded = amount.round_dp_with_strategy(units, RoundingStrategy::MidpointAwayFromZero);
    // Written with exactly the minor unit's digits (`7.00`); the value is already rounded.
    rounded.rescale(units);
    rounded
}

/// An amount in a currency, rounded to the currency's minor unit.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Rounds `amount` to the currency's minor unit (half away from zero).
    pub fn rounded(amount: Decimal, currency: Currency) -> Self {
        Money {
            amount: round_to_minor_unit(amount, currency),
            currency,
        }
    }

    pub fn zero(currency: Currency) -> Self {
        Money::rounded(Decimal::ZERO, currency)
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn negated(&self) -> Self {
        Money {
            amount: -self.amount,
            currency: self.currency,
        }
    }

    /// `quantity x rate` in `currency`, rounded once; `None` if the product overflows.
    pub fn product(quantity: Decimal, rate: Decimal, currency: Currency) -> Option<Self> {
        quantity
            .checked_mul(rate)
            .map(|amount| Money::rounded(amount, currency))
    }

    /// Converts into `to` at `rate` (units of `to` per unit of this currency), rounding
    /// once; `None` if the product overflows.
    pub fn convert(&self, rate: Decimal, to: Currency) -> Option<Self> {
        Money::product(self.amount, rate, to)
    }

    /// The sum of two amounts in the same currency; `None` on overflow or another currency.
    pub fn checked_add(&self, other: Money) -> Option<Self> {
        if other.currency != self.currency {
            return None;
        }
        self.amount.checked_add(other.amount).map(|amount| Money {
            amount,
            currency: self.currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn check(amount: &str, currency: &str, expected: &str) {
        let currency = Currency::parse(currency).unwrap();
        let money = Money::rounded(Decimal::from_str(amount).unwrap(), currency);
        assert_eq!(money.amount().to_string(), expected, "{amount} {currency}");
    }

    #[test]
    fn rounds_half_away_from_zero_to_the_minor_unit() {
        check("10.005", "EUR", "10.01");
        check("10.004", "EUR", "10.00");
        check("-10.005", "EUR", "-10.01");
        check("1234.5", "JPY", "1235");
        check("-0.5", "JPY", "-1");
        check("1.0005", "BHD", "1.001");
        check("7", "EUR", "7.00");
    }

    #[test]
    fn converts_with_a_single_rounding() {
        let eur = Currency::parse("EUR").unwrap();
        let usd = Currency::parse("USD").unwrap();
        let value = Money::rounded(Decimal::from_str("1125.00").unwrap(), eur);
        let converted = value
            .convert(Decimal::from_str("1.0835").unwrap(), usd)
            .unwrap();
        assert_eq!(converted.amount().to_string(), "1218.94");
        assert_eq!(converted.currency(), usd);
    }

    #[test]
    fn products_that_overflow_are_none_not_a_panic() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(Money::product(Decimal::MAX, Decimal::from(2), eur), None);
        let max = Money::rounded(Decimal::from(1_000_000_000_000i64), eur);
        assert!(max.convert(Decimal::MAX, eur).is_none());
        assert!(max.checked_add(Money::rounded(Decimal::MAX, eur)).is_none());
    }

    proptest! {
        #[test]
        fn rounding_is_within_half_a_minor_unit(cents in -10_000_000i64..10_000_000, extra in 0u32..1000) {
            let eur = Currency::parse("EUR").unwrap();
            let raw = Decimal::new(cents * 1000 + i64::from(extra), 5);
            let rounded = round_to_minor_unit(raw, eur);
            prop_assert!((rounded - raw).abs() <= Decimal::new(5, 3));
            prop_assert_eq!(round_to_minor_unit(rounded, eur), rounded);
            prop_assert_eq!(round_to_minor_unit(-raw, eur), -rounded);
        }
    }
}
