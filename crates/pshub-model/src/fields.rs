//! Reading typed fields out of untrusted JSON, with errors that name the field.
//!
//! Decimals are read from JSON strings or numbers and parsed exactly: numbers keep their
//! text (serde_json's `arbitrary_precision`), so `7.1` never passes through `f64`.

use crate::Currency;
use crate::decimal::Bounds;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::fmt;

/// One field that breaks the contract: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for FieldError {}

pub type FieldResult<T> = Result<T, FieldError>;

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() > 40 => {
            format!("the string \"{}...\"", &s[..s.floor_char_boundary(40)])
        }
        Value::String(s) => format!("the string \"{s}\""),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A JSON object being read, with its path for error messages (`data.contract`).
pub struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    pub fn new(path: impl Into<String>, value: &'a Value) -> FieldResult<Self> {
        let path = path.into();
        match value {
            Value::Object(map) => Ok(Obj { path, map }),
            other => Err(FieldError {
                field: path,
                problem: format!("expected an object, got {}", describe(other)),
            }),
        }
    }

    pub fn path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    pub fn error(&self, name: &str, problem: impl Into<String>) -> FieldError {
        FieldError {
            field: self.path(name),
            problem: problem.into(),
        }
    }

    /// The field's value, treating JSON `null` as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> FieldResult<&'a Value> {
        self.get(name)
            .ok_or_else(|| self.error(name, "is required"))
    }

    pub fn str(&self, name: &str) -> FieldResult<&'a str> {
        match self.required(name)? {
            Value::String(s) => Ok(s),
            other => Err(self.error(name, format!("expected a string, got {}", describe(other)))),
        }
    }

    pub fn opt_str(&self, name: &str) -> FieldResult<Option<&'a str>> {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.str(name).map(Some)
        }
    }

    /// A business key, parsed by the id type's own constructor.
    pub fn key<T>(&self, name: &str, parse: fn(&str) -> Result<T, String>) -> FieldResult<T> {
        parse(self.str(name)?).map_err(|problem| self.error(name, problem))
    }

    pub fn opt_key<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Result<T, String>,
    ) -> FieldResult<Option<T>> {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.key(name, parse).map(Some)
        }
    }

    /// An exact decimal from a JSON string or number, normalised (`7.50` reads as `7.5`),
    /// within `bounds`. A value that cannot be held exactly is refused, never rounded.
    pub fn decimal(&self, name: &str, bounds: Bounds) -> FieldResult<Decimal> {
        let value = self.required(name)?;
        let text = match value {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(self.error(
                    name,
                    format!(
                        "expected a decimal number (string or number), got {}",
                        describe(other)
                    ),
                ));
            }
        };
        let parsed =
            crate::decimal::parse_exact(&text).map_err(|problem| self.error(name, problem))?;
        bounds
            .check(parsed)
            .map_err(|problem| self.error(name, problem))
    }

    pub fn opt_decimal(&self, name: &str, bounds: Bounds) -> FieldResult<Option<Decimal>> {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.decimal(name, bounds).map(Some)
        }
    }

    pub fn date(&self, name: &str) -> FieldResult<NaiveDate> {
        let text = self.str(name)?;
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| self.error(name, format!("'{text}' is not a date (YYYY-MM-DD)")))
    }

    pub fn opt_date(&self, name: &str) -> FieldResult<Option<NaiveDate>> {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.date(name).map(Some)
        }
    }

    pub fn currency(&self, name: &str) -> FieldResult<Currency> {
        self.key(name, Currency::parse)
    }

    pub fn bool(&self, name: &str) -> FieldResult<bool> {
        match self.required(name)? {
            Value::Bool(b) => Ok(*b),
            other => Err(self.error(
                name,
                format!("expected true or false, got {}", describe(other)),
            )),
        }
    }

    pub fn opt_bool(&self, name: &str) -> FieldResult<Option<bool>> {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.bool(name).map(Some)
        }
    }

    pub fn u32(&self, name: &str) -> FieldResult<u32> {
        match self.required(name)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    self.error(
                        name,
                        format!("expected a whole number from 0 to 4294967295, got {n}"),
                    )
                }),
            other => Err(self.error(
                name,
                format!("expected a whole number, got {}", describe(other)),
            )),
        }
    }

    pub fn obj(&self, name: &str) -> FieldResult<Obj<'a>> {
        Obj::new(self.path(name), self.required(name)?)
    }

    pub fn opt_obj(&self, name: &str) -> FieldResult<Option<Obj<'a>>> {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.obj(name).map(Some)
        }
    }

    /// Each element of an array field, as an object with its index in the path.
    pub fn objects(&self, name: &str) -> FieldResult<Vec<Obj<'a>>> {
        match self.required(name)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Obj::new(format!("{}[{i}]", self.path(name)), item))
                .collect(),
            other => Err(self.error(name, format!("expected an array, got {}", describe(other)))),
        }
    }

    pub fn opt_objects(&self, name: &str) -> FieldResult<Option<Vec<Obj<'a>>>> {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.objects(name).map(Some)
        }
    }

    /// A closed set of words, such as a state.
    pub fn one_of<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> FieldResult<T> {
        let text = self.str(name)?;
        choices
            .iter()
            .find(|(word, _)| *word == text)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
                self.error(name, format!("'{text}' is not one of {}", words.join(", ")))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decimal_of(value: Value) -> Result<String, String> {
        let doc = json!({ "x": value });
        let obj = Obj::new("data", &doc).unwrap();
        obj.decimal("x", Bounds::RATE)
            .map(|d| d.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn decimals_read_exactly_from_strings_and_numbers() {
        assert_eq!(decimal_of(json!("7.5")), Ok("7.5".into()));
        assert_eq!(decimal_of(json!("7.50")), Ok("7.5".into()));
        let number: Value = serde_json::from_str("0.1000000000000000055511151231257827").unwrap();
        assert_eq!(
            decimal_of(number),
            Err("data.x: '0.1000000000000000055511151231257827' has more than 28 decimal places and cannot be held exactly".into()),
            "refused, never rounded"
        );
        let number: Value = serde_json::from_str("0.125").unwrap();
        assert_eq!(decimal_of(number), Ok("0.125".into()));
        let number: Value = serde_json::from_str("7.1").unwrap();
        assert_eq!(decimal_of(number), Ok("7.1".into()));
        assert_eq!(
            decimal_of(json!(true)),
            Err("data.x: expected a decimal number (string or number), got true".into())
        );
        assert_eq!(
            decimal_of(json!("seven")),
            Err("data.x: 'seven' is not a decimal number".into())
        );
    }

    #[test]
    fn missing_and_nested_fields_are_named() {
        let doc = json!({ "contract": { "rates": [ {}, { "rate": "x" } ] } });
        let top = Obj::new("data", &doc).unwrap();
        assert_eq!(
            top.str("id").unwrap_err().to_string(),
            "data.id: is required"
        );
        let contract = top.obj("contract").unwrap();
        let rates = contract.objects("rates").unwrap();
        assert_eq!(
            rates[1].decimal("rate", Bounds::RATE).unwrap_err().field,
            "data.contract.rates[1].rate"
        );
        assert_eq!(top.date("contract").unwrap_err().field, "data.contract");
    }
}
