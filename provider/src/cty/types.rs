//! cty types and their JSON form (as in schemas: `"string"`, `["list","string"]`, …).

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::CodecError;

#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Bool,
    Number,
    String,
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(t: Type) -> Self {
        Self::List(Box::new(t))
    }
    pub fn set(t: Type) -> Self {
        Self::Set(Box::new(t))
    }
    pub fn map(t: Type) -> Self {
        Self::Map(Box::new(t))
    }
    #[cfg(test)]
    pub fn object<I: IntoIterator<Item = (&'static str, Type)>>(attrs: I) -> Self {
        Self::Object(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    pub fn to_json(&self) -> Json {
        match self {
            Self::Bool => json!("bool"),
            Self::Number => json!("number"),
            Self::String => json!("string"),
            Self::Dynamic => json!("dynamic"),
            Self::List(t) => json!(["list", t.to_json()]),
            Self::Set(t) => json!(["set", t.to_json()]),
            Self::Map(t) => json!(["map", t.to_json()]),
            Self::Object(attrs) => {
                json!([
                    "object",
                    attrs.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<_, _>>()
                ])
            }
            Self::Tuple(ts) => json!(["tuple", ts.iter().map(Type::to_json).collect::<Vec<_>>()]),
        }
    }

    pub fn from_json(j: &Json) -> Result<Self, CodecError> {
        let bad = || CodecError(format!("not a type: {j}"));
        match j {
            Json::String(s) => match s.as_str() {
                "bool" => Ok(Self::Bool),
                "number" => Ok(Self::Number),
                "string" => Ok(Self::String),
                "dynamic" => Ok(Self::Dynamic),
                _ => Err(bad()),
            },
            Json::Array(a) if a.len() == 2 => {
                let kind = a[0].as_str().ok_or_else(bad)?;
                match kind {
                    "list" => Ok(Self::list(Self::from_json(&a[1])?)),
                    "set" => Ok(Self::set(Self::from_json(&a[1])?)),
                    "map" => Ok(Self::map(Self::from_json(&a[1])?)),
                    "object" => {
                        let o = a[1].as_object().ok_or_else(bad)?;
                        Ok(Self::Object(
                            o.iter().map(|(k, v)| Ok((k.clone(), Self::from_json(v)?))).collect::<Result<_, _>>()?,
                        ))
                    }
                    "tuple" => {
                        let t = a[1].as_array().ok_or_else(bad)?;
                        Ok(Self::Tuple(t.iter().map(Self::from_json).collect::<Result<_, _>>()?))
                    }
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}
