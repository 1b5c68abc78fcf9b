//! YAML request bodies decoded with bounded work.
//!
//! A YAML document can name a node once (`&a`) and repeat it by alias
//! (`*a`) any number of times, nested: a few kilobytes can stand for
//! gigabytes of decoded object (the "billion laughs"). JSON has no such
//! amplification, so only YAML needs this: every node decoded is charged
//! against a budget of JSON-equivalent bytes, and decoding stops with
//! [`Error::TooLarge`] once the budget is spent, long before memory is.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a YAML body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Syntax(String),
    /// The document decodes to more than the budget (through aliases).
    #[error("the YAML document expands to more than {budget} bytes (through its aliases)")]
    TooLarge { budget: usize },
}

/// How much a YAML body may decode to: twice its own size (JSON spells a
/// YAML document in at most about that: quotes and commas) plus room for
/// small documents.
pub fn budget_for(body: &[u8]) -> usize {
    body.len().saturating_mul(2).saturating_add(64 * 1024)
}

/// Decodes one YAML document into a JSON value, spending at most `budget`
/// JSON-equivalent bytes.
pub fn from_slice_bounded(body: &[u8], budget: usize) -> Result<Value, Error> {
    let left = Budget {
        left: Cell::new(budget),
        spent: Cell::new(false),
    };
    let deserializer = serde_yaml::Deserializer::from_slice(body);
    match Node(&left).deserialize(deserializer) {
        Ok(value) => Ok(value),
        Err(_) if left.spent.get() => Err(Error::TooLarge { budget }),
        Err(e) => Err(Error::Syntax(e.to_string())),
    }
}

struct Budget {
    left: Cell<usize>,
    /// Set when the budget ran out (the error itself is the YAML library's
    /// type, so this tells the two endings apart).
    spent: Cell<bool>,
}

impl Budget {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.spent.set(true);
                Err(E::custom("decoding budget spent"))
            }
        }
    }
}

/// Decodes one node (and everything below it) as a JSON value.
struct Node<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A mapping's key: a string as JSON wants it (YAML allows any scalar).
struct Key<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        let key = String::deserialize(deserializer)?;
        self.0.charge(key.len() + 3)?;
        Ok(key)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.charge(5)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.charge(8)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.charge(8)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.charge(8)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.charge(v.len() + 2)?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.charge(v.len() + 2)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.charge(4)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.charge(2)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node(self.0))? {
            self.0.charge(1)?;
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.charge(2)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(Key(self.0))? {
            let value = map.next_value_seed(Node(self.0))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(text: &str) -> Result<Value, Error> {
        from_slice_bounded(text.as_bytes(), budget_for(text.as_bytes()))
    }

    #[test]
    fn decodes_what_serde_yaml_decodes() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {a: b}\ndata:\n  n: \"1\"\n  list: [1, 2.5, true, null, ~]\n  1: one\n";
        let plain: Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(decode(text).unwrap(), plain);
        assert_eq!(decode(text).unwrap()["data"]["1"], json!("one"));
    }

    #[test]
    fn small_aliases_are_fine() {
        let text = "a: &x {k: v}\nb: *x\n";
        assert_eq!(
            decode(text).unwrap(),
            json!({"a": {"k": "v"}, "b": {"k": "v"}})
        );
    }

    /// Regression: nested aliases (the "billion laughs") decoded without
    /// bound; a 1 KiB body must not become gigabytes.
    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(text.len() < 1024);
        assert!(matches!(decode(&text), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn syntax_errors_say_where() {
        let Err(Error::Syntax(message)) = decode("a: [1, 2\n") else {
            panic!("a syntax error expected");
        };
        assert!(message.contains("line"), "{message}");
    }
}
