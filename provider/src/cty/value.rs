//! Values: known, null or unknown. Resources do not read these by attribute name: they
//! convert them to and from their typed models (`framework::model`).

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
    pub fn int(n: i64) -> Self {
        Self::Number(n as f64)
    }
    // Builders for tests; resources build values from their models.
    #[cfg(test)]
    pub fn str(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }
    #[cfg(test)]
    pub fn object<I: IntoIterator<Item = (&'static str, Value)>>(attrs: I) -> Self {
        Self::Map(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
    #[cfg(test)]
    pub fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Self {
        Self::List(items.into_iter().map(|s| Self::String(s.into())).collect())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
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
}
