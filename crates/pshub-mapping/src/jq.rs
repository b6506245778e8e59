//! jq expressions, compiled with jaq's standard library (one program for several, which share it), run on a record.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, RcIter};
use jaq_json::Val;

/// The variable a program's branch is chosen by.
const BRANCH: &str = "$__pshub_branch";

/// Several expressions compiled as one program, each a branch of it: the program carries
/// jaq's standard library compiled once, however many expressions share it (one mapping's
/// fields, for a mapping), where a program per expression would carry it each time.
struct Program {
    filter: jaq_core::Filter<Native<Val>>,
}

/// A compiled expression and the text it was written as (which errors quote).
pub struct Expr {
    pub text: String,
    program: std::sync::Arc<Program>,
    branch: usize,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Compiles a jq program whose branch `$__pshub_branch` chooses.
fn program(code: &str, shown: &str) -> Result<Program, String> {
    let loader = Loader::new(jaq_std::defs().chain(jaq_json::defs()));
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errors| {
            let what: Vec<String> = errors
                .iter()
                .map(|(_, error)| format!("{error:?}"))
                .collect();
            format!("`{shown}` does not parse: {}", what.join("; "))
        })?;
    let filter = Compiler::default()
        .with_funs(jaq_std::funs().chain(jaq_json::funs()))
        .with_global_vars([BRANCH])
        .compile(modules)
        .map_err(|errors| {
            let names: Vec<String> = errors
                .iter()
                .flat_map(|(_, undefined)| undefined.iter().map(|(name, _)| name.to_string()))
                .collect();
            format!("`{shown}` names what is not defined: {}", names.join(", "))
        })?;
    Ok(Program { filter })
}

impl Expr {
    /// Compiles `text`, or says why it does not compile.
    pub fn compile(text: &str) -> Result<Expr, String> {
        Ok(Expr::compile_all(&[text])?.remove(0))
    }

    /// Compiles `texts` as one program, an expression each; the error is that of the first
    /// text that does not compile.
    pub fn compile_all(texts: &[&str]) -> Result<Vec<Expr>, String> {
        // Each text on lines of its own, so that a comment in one ends with it.
        let mut code = String::new();
        for (branch, text) in texts.iter().enumerate() {
            let keyword = if branch == 0 { "if" } else { "elif" };
            code.push_str(&format!(
                "{keyword} {BRANCH} == {branch} then (\n{text}\n)\n"
            ));
        }
        code.push_str(if texts.is_empty() {
            "empty"
        } else {
            "else empty end"
        });
        let program = match program(&code, texts.first().copied().unwrap_or_default()) {
            Ok(program) => std::sync::Arc::new(program),
            Err(combined) => {
                for text in texts {
                    program(&format!("(\n{text}\n)"), text)?;
                }
                return Err(combined);
            }
        };
        Ok(texts
            .iter()
            .enumerate()
            .map(|(branch, text)| Expr {
                text: text.to_string(),
                program: program.clone(),
                branch,
            })
            .collect())
    }

    fn run<'a>(
        &'a self,
        inputs: &'a RcIter<core::iter::Empty<Result<Val, String>>>,
        input: &Val,
    ) -> impl Iterator<Item = Result<Val, String>> + 'a {
        let branch = Val::from(self.branch as isize);
        self.program
            .filter
            .run((Ctx::new([branch], inputs), input.clone()))
            .map(|value| value.map_err(|error| error.to_string()))
    }

    /// The expression's first value on `input` (`null` when it yields none), or its error.
    pub fn first(&self, input: &Val) -> Result<Val, String> {
        let inputs = RcIter::new(core::iter::empty());
        self.run(&inputs, input).next().unwrap_or(Ok(Val::Null))
    }

    /// Every value the expression yields on `input`, or its first error.
    pub fn all(&self, input: &Val) -> Result<Vec<Val>, String> {
        let inputs = RcIter::new(core::iter::empty());
        self.run(&inputs, input).collect()
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
