//! Values: known, null or unknown, with helpers to read the shapes providers use.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Not known until apply (msgpack extension 0, or 12 with refinements).
    Unknown,
    Bool(bool),
    Number(f64),
    String(String),
    /// Lists, sets and tuples.
    List(Vec<Value>),
    /// Maps and objects.
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }
    pub fn opt_str(s: Option<impl Into<String>>) -> Self {
        s.map(|s| Self::String(s.into())).unwrap_or(Self::Null)
    }
    pub fn int(n: i64) -> Self {
        Self::Number(n as f64)
    }
    pub fn object<I: IntoIterator<Item = (&'static str, Value)>>(attrs: I) -> Self {
        Self::Map(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
    pub fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Self {
        Self::List(items.into_iter().map(|s| Self::String(s.into())).collect())
    }
    pub fn string_map<'a, I: IntoIterator<Item = (&'a String, &'a String)>>(items: I) -> Self {
        Self::Map(items.into_iter().map(|(k, v)| (k.clone(), Self::String(v.clone()))).collect())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Self::Unknown)
    }
    /// An attribute of an object (Null when absent or when self is not an object).
    pub fn get(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Self::Map(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
    pub fn set(&mut self, name: &str, v: Value) {
        if let Self::Map(m) = self {
            m.insert(name.to_string(), v);
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Number(n) if n.fract() == 0.0 => Some(*n as i64),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Self::Map(m) => Some(m),
            _ => None,
        }
    }
    /// A known list of known strings.
    pub fn as_strings(&self) -> Option<Vec<String>> {
        self.as_list()?.iter().map(|v| v.as_str().map(str::to_string)).collect()
    }
    pub fn as_string_map(&self) -> Option<BTreeMap<String, String>> {
        self.as_map()?.iter().map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()
    }
}
