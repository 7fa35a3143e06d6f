//! The JSON encoding of values (raw state in UpgradeResourceState, JSON DynamicValues).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{CodecError, Type, Value};

pub fn decode_json(ty: &Type, bytes: &[u8]) -> Result<Value, CodecError> {
    let j: Json = serde_json::from_slice(bytes).map_err(|e| CodecError(format!("json: {e}")))?;
    from_json(ty, &j, true)
}

/// `lenient_objects`: state written by an older schema may lack or carry extra attributes;
/// missing ones become null and unknown ones are dropped.
fn from_json(ty: &Type, j: &Json, lenient_objects: bool) -> Result<Value, CodecError> {
    let bad = || CodecError(format!("json: {j} does not fit {}", ty.to_json()));
    if j.is_null() {
        return Ok(Value::Null);
    }
    Ok(match ty {
        Type::Dynamic => match j {
            Json::Object(o) if o.contains_key("type") && o.contains_key("value") => {
                from_json(&Type::from_json(&o["type"])?, &o["value"], lenient_objects)?
            }
            _ => return Err(bad()),
        },
        Type::Bool => Value::Bool(j.as_bool().ok_or_else(bad)?),
        Type::Number => match j {
            Json::Number(n) => Value::Number(n.as_f64().ok_or_else(bad)?),
            Json::String(s) => Value::Number(s.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        Type::String => match j {
            Json::String(s) => Value::String(s.clone()),
            Json::Number(n) => Value::String(n.to_string()),
            Json::Bool(b) => Value::String(b.to_string()),
            _ => return Err(bad()),
        },
        Type::List(t) | Type::Set(t) => Value::List(
            j.as_array().ok_or_else(bad)?.iter().map(|i| from_json(t, i, lenient_objects)).collect::<Result<_, _>>()?,
        ),
        Type::Tuple(ts) => {
            let a = j.as_array().ok_or_else(bad)?;
            Value::List(ts.iter().zip(a).map(|(t, i)| from_json(t, i, lenient_objects)).collect::<Result<_, _>>()?)
        }
        Type::Map(t) => Value::Map(
            j.as_object()
                .ok_or_else(bad)?
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_json(t, v, lenient_objects)?)))
                .collect::<Result<_, CodecError>>()?,
        ),
        Type::Object(attrs) => {
            let o = j.as_object().ok_or_else(bad)?;
            let mut m = BTreeMap::new();
            for (k, t) in attrs {
                m.insert(
                    k.clone(),
                    match o.get(k) {
                        Some(v) => from_json(t, v, lenient_objects)?,
                        None => Value::Null,
                    },
                );
            }
            if !lenient_objects {
                if let Some(extra) = o.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(CodecError(format!("json: unexpected attribute {extra:?}")));
                }
            }
            Value::Map(m)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_state_with_missing_and_extra_attributes() {
        let ty = Type::object([("id", Type::String), ("limit", Type::Number), ("exts", Type::list(Type::String))]);
        let v = decode_json(&ty, br#"{"id":"x","old_field":1,"exts":["a"]}"#).unwrap();
        assert_eq!(
            v,
            Value::object([("id", Value::str("x")), ("limit", Value::Null), ("exts", Value::strings(["a"]))])
        );
        assert!(decode_json(&ty, br#"{"id": []}"#).is_err());
    }
}
