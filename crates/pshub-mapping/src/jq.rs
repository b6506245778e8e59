//! One jq expression, compiled once with jaq's standard library, run on a record.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, RcIter};
use jaq_json::Val;

/// A compiled expression and the text it was written as (which errors quote).
pub struct Expr {
    pub text: String,
    filter: jaq_core::Filter<Native<Val>>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Expr {
    /// Compiles `text`, or says why it does not compile.
    pub fn compile(text: &str) -> Result<Expr, String> {
        let loader = Loader::new(jaq_std::defs().chain(jaq_json::defs()));
        let arena = Arena::default();
        let modules = loader
            .load(
                &arena,
                File {
                    code: text,
                    path: (),
                },
            )
            .map_err(|errors| {
                let what: Vec<String> = errors
                    .iter()
                    .map(|(_, error)| format!("{error:?}"))
                    .collect();
                format!("`{text}` does not parse: {}", what.join("; "))
            })?;
        let filter = Compiler::default()
            .with_funs(jaq_std::funs().chain(jaq_json::funs()))
            .compile(modules)
            .map_err(|errors| {
                let names: Vec<String> = errors
                    .iter()
                    .flat_map(|(_, undefined)| undefined.iter().map(|(name, _)| name.to_string()))
                    .collect();
                format!("`{text}` names what is not defined: {}", names.join(", "))
            })?;
        Ok(Expr {
            text: text.to_string(),
            filter,
        })
    }

    /// The expression's first value on `input` (`null` when it yields none), or its error.
    pub fn first(&self, input: &Val) -> Result<Val, String> {
        let inputs = RcIter::new(core::iter::empty());
        let mut out = self.filter.run((Ctx::new([], &inputs), input.clone()));
        match out.next() {
            None => Ok(Val::Null),
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => Err(error.to_string()),
        }
    }

    /// Every value the expression yields on `input`, or its first error.
    pub fn all(&self, input: &Val) -> Result<Vec<Val>, String> {
        let inputs = RcIter::new(core::iter::empty());
        self.filter
            .run((Ctx::new([], &inputs), input.clone()))
            .map(|value| value.map_err(|error| error.to_string()))
            .collect()
    }

    /// The expression's first value on a JSON value (`null` when it yields none).
    pub fn first_of(&self, input: &serde_json::Value) -> Result<serde_json::Value, String> {
        self.first(&Val::from(input.clone()))
            .map(serde_json::Value::from)
    }

    /// Whether the expression holds on `input` (jq's truth: neither `false` nor `null`).
    pub fn holds(&self, input: &Val) -> Result<bool, String> {
        Ok(!matches!(self.first(input)?, Val::Null | Val::Bool(false)))
    }
}
