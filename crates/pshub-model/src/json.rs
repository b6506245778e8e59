//! What a JSON parser into maps hides: an object with the same key twice. serde_json keeps
//! the last value silently, so `{"hours": "1", "hours": "20"}` would bill 20 hours. This scan
//! runs over the text as it arrived and names the first repeated key.

use std::collections::HashSet;

/// The path of the first key that appears twice in one object (`data.hours`,
/// `data.rates[2].rate`), or `None`. `text` must already be valid JSON.
pub fn duplicate_key(text: &str) -> Option<String> {
    let mut scan = Scan {
        bytes: text.as_bytes(),
        text,
        at: 0,
    };
    let mut path = String::new();
    scan.value(&mut path).err()
}

struct Scan<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
}

/// `Err` carries the path of the repeated key.
type Found = Result<(), String>;

impl Scan<'_> {
    fn skip_space(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn value(&mut self, path: &mut String) -> Found {
        self.skip_space();
        match self.peek() {
            Some(b'{') => self.object(path),
            Some(b'[') => self.array(path),
            Some(b'"') => {
                self.string();
                Ok(())
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                Ok(())
            }
        }
    }

    /// Skips a string and answers its text between the quotes, escapes undone.
    fn string(&mut self) -> std::borrow::Cow<'_, str> {
        let start = self.at + 1;
        self.at = start;
        let mut escaped = false;
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'\\' => {
                    escaped = true;
                    self.at += 1;
                }
                b'"' => break,
                _ => {}
            }
        }
        let raw = &self.text[start..self.at.saturating_sub(1).max(start)];
        if escaped {
            let quoted = &self.text[start - 1..self.at];
            serde_json::from_str::<String>(quoted)
                .map(std::borrow::Cow::Owned)
                .unwrap_or(std::borrow::Cow::Borrowed(raw))
        } else {
            std::borrow::Cow::Borrowed(raw)
        }
    }

    fn object(&mut self, path: &mut String) -> Found {
        self.at += 1;
        let mut keys: HashSet<String> = HashSet::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(b'}') | None => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b',') => {
                    self.at += 1;
                    continue;
                }
                _ => {}
            }
            let key = self.string().into_owned();
            let outer = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&key);
            if !keys.insert(key) {
                return Err(path.clone());
            }
            self.skip_space();
            self.at += 1; // the colon
            self.value(path)?;
            path.truncate(outer);
        }
    }

    fn array(&mut self, path: &mut String) -> Found {
        self.at += 1;
        let mut index = 0usize;
        loop {
            self.skip_space();
            match self.peek() {
                Some(b']') | None => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b',') => {
                    self.at += 1;
                    index += 1;
                    continue;
                }
                _ => {}
            }
            let outer = path.len();
            path.push_str(&format!("[{index}]"));
            self.value(path)?;
            path.truncate(outer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::duplicate_key;

    fn check(text: &str, expected: Option<&str>) {
        assert!(
            serde_json::from_str::<serde_json::Value>(text).is_ok(),
            "{text} is JSON"
        );
        assert_eq!(duplicate_key(text).as_deref(), expected, "{text}");
    }

    #[test]
    fn names_the_first_repeated_key() {
        check(r#"{"a": 1, "b": {"c": 2}}"#, None);
        check(
            r#"{"data": {"hours": "1", "hours": "20"}}"#,
            Some("data.hours"),
        );
        check(r#"{"id": "x", "id": "y"}"#, Some("id"));
        check(
            r#"{"data": {"rates": [{"rate": 1}, {"rate": 2, "rate": 3}]}}"#,
            Some("data.rates[1].rate"),
        );
        check(r#"[{"a": 1}, {"a": 2, "a": 3}]"#, Some("[1].a"));
        // The same key in sibling objects is not a repeat; escapes name the same key.
        check(r#"{"x": {"k": 1}, "y": {"k": 1}}"#, None);
        check(r#"{"k\u0065y": 1, "key": 2}"#, Some("key"));
        check(
            r#"{"a": "}\"{", "b": [1, "]", {"c": null}], "a": 0}"#,
            Some("a"),
        );
        check(r#"  { "a" : [ ] , "b" : { } }  "#, None);
    }
}
