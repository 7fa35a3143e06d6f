//! Typed models: a resource's attributes as one Rust struct, converted to and from cty values.
//!
//! A model is declared once with [`model!`](crate::framework::model_macro): the struct, its
//! decoding and encoding, the attribute name constants and the schema attributes all come from
//! that one list of fields, so a field cannot be in the model and missing from the schema (or
//! spelled differently in a diagnostic path).
//!
//! Every attribute is a [`Field`]: null, unknown or known. Terraform sends unknown values in
//! configurations (module inputs at validate time) and plans (computed attributes), and the
//! resources tell null from unknown, so the model keeps all three; converting a value to a
//! model and back gives the same value. Lists and maps hold [`Field`]s too, since Terraform
//! may send `[var.x, "a"]` with only the first element unknown.
//!
//! Decoding never defaults: a value that does not fit the field's type (a fractional number
//! for a whole-number attribute, an attribute the model does not have) is a [`ModelError`]
//! carrying the attribute path, reported as a diagnostic by [`decode`].

use std::collections::BTreeMap;

use super::diag::{Diags, Path};
use super::schema::Attr;
use crate::cty::{Type, Value};

/// A value as Terraform holds it: null, not known until apply, or known. The default is
/// null (what an attribute the configuration leaves out holds).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Field<T> {
    #[default]
    Null,
    Unknown,
    Known(T),
}

impl<T> From<Option<T>> for Field<T> {
    /// `None` is null.
    fn from(o: Option<T>) -> Self {
        o.map_or(Self::Null, Self::Known)
    }
}

impl<T> Field<T> {
    /// The value when known (None for null and unknown).
    pub fn known(&self) -> Option<&T> {
        match self {
            Self::Known(v) => Some(v),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Self::Unknown)
    }
    /// Set to a known value (neither null nor unknown).
    pub fn is_known(&self) -> bool {
        matches!(self, Self::Known(_))
    }
}

impl Field<String> {
    pub fn str(s: impl Into<String>) -> Self {
        Self::Known(s.into())
    }
    pub fn as_str(&self) -> Option<&str> {
        self.known().map(String::as_str)
    }
}

impl<T: Copy> Field<T> {
    pub fn get(&self) -> Option<T> {
        self.known().copied()
    }
}

/// A list attribute; each element may itself be null or unknown in a configuration.
pub type List<T> = Vec<Field<T>>;
/// A map attribute (string keys); each value may itself be null or unknown.
pub type Map<T> = BTreeMap<String, Field<T>>;

impl<T> Field<List<T>> {
    /// A known list of known elements.
    pub fn list<I: IntoIterator<Item = T>>(items: I) -> Self {
        Self::Known(items.into_iter().map(Field::Known).collect())
    }
}

impl<T: Clone> Field<List<T>> {
    /// The elements when the list and all its elements are known.
    pub fn all_known(&self) -> Option<Vec<T>> {
        self.known()?.iter().map(|e| e.known().cloned()).collect()
    }
}

impl<T> Field<Map<T>> {
    /// A known map of known values.
    pub fn map<I: IntoIterator<Item = (String, T)>>(entries: I) -> Self {
        Self::Known(entries.into_iter().map(|(k, v)| (k, Field::Known(v))).collect())
    }
}

impl<T: Clone> Field<Map<T>> {
    /// The entries when the map and all its values are known.
    pub fn all_known(&self) -> Option<BTreeMap<String, T>> {
        self.known()?.iter().map(|(k, v)| v.known().map(|v| (k.clone(), v.clone()))).collect()
    }
    /// The value at `key`; absent keys, like a null or unknown map, give null.
    pub fn entry(&self, key: &str) -> Field<T> {
        self.known().and_then(|m| m.get(key)).cloned().unwrap_or_default()
    }
}

/// A value that does not fit its model, with the path of the attribute.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    pub path: Path,
    pub message: String,
}

impl ModelError {
    fn new(path: &Path, expected: &str, got: &Value) -> Self {
        Self { path: path.clone(), message: format!("expected {expected}, got {}", describe(got)) }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Unknown => "an unknown value".into(),
        Value::Bool(b) => format!("the bool {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::List(_) => "a list".into(),
        Value::Map(_) => "an object or map".into(),
    }
}

/// A Rust type an attribute can have: its cty type and its conversions.
pub trait CtyValue: Sized {
    fn ty() -> Type;
    /// `at` is the path of the value, for errors.
    fn decode(v: &Value, at: &Path) -> Result<Self, ModelError>;
    fn encode(&self) -> Value;
}

impl<T: CtyValue> CtyValue for Field<T> {
    fn ty() -> Type {
        T::ty()
    }
    fn decode(v: &Value, at: &Path) -> Result<Self, ModelError> {
        match v {
            Value::Null => Ok(Self::Null),
            Value::Unknown => Ok(Self::Unknown),
            v => T::decode(v, at).map(Self::Known),
        }
    }
    fn encode(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Unknown => Value::Unknown,
            Self::Known(v) => v.encode(),
        }
    }
}

impl CtyValue for String {
    fn ty() -> Type {
        Type::String
    }
    fn decode(v: &Value, at: &Path) -> Result<Self, ModelError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            v => Err(ModelError::new(at, "a string", v)),
        }
    }
    fn encode(&self) -> Value {
        Value::String(self.clone())
    }
}

impl CtyValue for bool {
    fn ty() -> Type {
        Type::Bool
    }
    fn decode(v: &Value, at: &Path) -> Result<Self, ModelError> {
        match v {
            Value::Bool(b) => Ok(*b),
            v => Err(ModelError::new(at, "a bool", v)),
        }
    }
    fn encode(&self) -> Value {
        Value::Bool(*self)
    }
}

/// Whole numbers (counts, ports, limits): a fraction is an error, not a truncation.
impl CtyValue for i64 {
    fn ty() -> Type {
        Type::Number
    }
    fn decode(v: &Value, at: &Path) -> Result<Self, ModelError> {
        match v {
            // i64::MAX as f64 rounds up to 2^63, which is out of range: hence the open bound.
            Value::Number(n) if n.fract() == 0.0 && *n >= i64::MIN as f64 && *n < i64::MAX as f64 => Ok(*n as i64),
            v => Err(ModelError::new(at, "a whole number", v)),
        }
    }
    fn encode(&self) -> Value {
        Value::int(*self)
    }
}

impl CtyValue for f64 {
    fn ty() -> Type {
        Type::Number
    }
    fn decode(v: &Value, at: &Path) -> Result<Self, ModelError> {
        match v {
            Value::Number(n) => Ok(*n),
            v => Err(ModelError::new(at, "a number", v)),
        }
    }
    fn encode(&self) -> Value {
        Value::Number(*self)
    }
}

impl<T: CtyValue> CtyValue for Vec<T> {
    fn ty() -> Type {
        Type::list(T::ty())
    }
    fn decode(v: &Value, at: &Path) -> Result<Self, ModelError> {
        match v {
            Value::List(items) => items.iter().enumerate().map(|(i, e)| T::decode(e, &at.clone().index(i))).collect(),
            v => Err(ModelError::new(at, "a list", v)),
        }
    }
    fn encode(&self) -> Value {
        Value::List(self.iter().map(T::encode).collect())
    }
}

impl<T: CtyValue> CtyValue for BTreeMap<String, T> {
    fn ty() -> Type {
        Type::map(T::ty())
    }
    fn decode(v: &Value, at: &Path) -> Result<Self, ModelError> {
        match v {
            Value::Map(m) => m.iter().map(|(k, e)| Ok((k.clone(), T::decode(e, &at.clone().key(k))?))).collect(),
            v => Err(ModelError::new(at, "a map", v)),
        }
    }
    fn encode(&self) -> Value {
        Value::Map(self.iter().map(|(k, v)| (k.clone(), v.encode())).collect())
    }
}

/// An object type's schema attributes (for nested attributes such as `placement = { … }`).
pub trait Object {
    fn attrs() -> Vec<Attr>;
}

impl<M: Object> Object for Field<M> {
    fn attrs() -> Vec<Attr> {
        M::attrs()
    }
}

/// A struct of attributes, declared with [`model!`](crate::framework::model_macro).
pub trait Model: CtyValue + Object + Clone + PartialEq {
    /// Attribute names (including nested blocks such as `timeouts`), in declaration order.
    const FIELDS: &'static [&'static str];

    fn from_value(v: &Value) -> Result<Self, ModelError> {
        Self::decode(v, &Path::default())
    }
    fn to_value(&self) -> Value {
        self.encode()
    }
}

/// The attributes of an object value, checked against the model's field names: anything
/// else is an error rather than silently dropped. Used by the code `model!` generates.
pub fn object_fields<'a>(v: &'a Value, at: &Path, fields: &[&str]) -> Result<&'a BTreeMap<String, Value>, ModelError> {
    match v {
        Value::Map(m) => match m.keys().find(|k| !fields.contains(&k.as_str())) {
            Some(extra) => Err(ModelError { path: at.clone(), message: format!("unexpected attribute {extra:?}") }),
            None => Ok(m),
        },
        v => Err(ModelError::new(at, "an object", v)),
    }
}

/// Decodes a value Terraform sent (configuration, plan or state) into its model; a value
/// that does not fit is reported at its attribute path.
pub fn decode<M: Model>(v: &Value, diags: &mut Diags) -> Option<M> {
    match M::from_value(v) {
        Ok(m) => Some(m),
        Err(e) if e.path.0.is_empty() => {
            diags.error("Invalid value", e.message);
            None
        }
        Err(e) => {
            diags.error_at(e.path, "Invalid value", e.message);
            None
        }
    }
}

/// For each resource's tests: the model and the schema have the same attributes with the
/// same types (nested blocks such as `timeouts` included).
#[cfg(test)]
pub fn assert_matches_schema<M: Model>(schema: &super::Schema) {
    let mut names: Vec<&str> = schema.block.attrs.iter().map(|a| a.name).collect();
    names.extend(schema.block.blocks.iter().map(|b| b.name));
    let mut fields = M::FIELDS.to_vec();
    names.sort_unstable();
    fields.sort_unstable();
    assert_eq!(fields, names, "model fields vs schema attributes");
    assert_eq!(M::ty(), schema.ty(), "model type vs schema type");
}
