//! The msgpack encoding of values, directed by their type (as cty defines it): objects and
//! maps are msgpack maps, lists/sets/tuples arrays, unknown is extension 0 (Terraform also
//! sends extension 12, an unknown with refinements), dynamic is `[type JSON, value]`.

use std::collections::BTreeMap;
use std::io::Cursor;

use rmp::Marker;

use super::{CodecError, Type, Value};

fn err(m: impl std::fmt::Display) -> CodecError {
    CodecError(format!("msgpack: {m}"))
}

pub fn encode(ty: &Type, v: &Value) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    write(&mut out, ty, v)?;
    Ok(out)
}

fn write(out: &mut Vec<u8>, ty: &Type, v: &Value) -> Result<(), CodecError> {
    use rmp::encode as e;
    match v {
        Value::Null => {
            e::write_nil(out).map_err(err)?;
            return Ok(());
        }
        Value::Unknown => {
            e::write_ext_meta(out, 1, 0).map_err(err)?;
            out.push(0);
            return Ok(());
        }
        _ => {}
    }
    match (ty, v) {
        (Type::Dynamic, _) => {
            // A dynamic value carries its concrete type; we only ever emit strings here.
            let inner = infer(v);
            e::write_array_len(out, 2).map_err(err)?;
            let tj = serde_json::to_vec(&inner.to_json()).map_err(err)?;
            e::write_bin(out, &tj).map_err(err)?;
            write(out, &inner, v)
        }
        (Type::Bool, Value::Bool(b)) => e::write_bool(out, *b).map_err(err),
        (Type::Number, Value::Number(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                e::write_sint(out, *n as i64).map(|_| ()).map_err(err)
            } else {
                e::write_f64(out, *n).map_err(err)
            }
        }
        (Type::String, Value::String(s)) => e::write_str(out, s).map_err(err),
        (Type::List(t) | Type::Set(t), Value::List(items)) => {
            e::write_array_len(out, items.len() as u32).map_err(err)?;
            items.iter().try_for_each(|i| write(out, t, i))
        }
        (Type::Tuple(ts), Value::List(items)) if ts.len() == items.len() => {
            e::write_array_len(out, items.len() as u32).map_err(err)?;
            ts.iter().zip(items).try_for_each(|(t, i)| write(out, t, i))
        }
        (Type::Map(t), Value::Map(m)) => {
            e::write_map_len(out, m.len() as u32).map_err(err)?;
            for (k, v) in m {
                e::write_str(out, k).map_err(err)?;
                write(out, t, v)?;
            }
            Ok(())
        }
        (Type::Object(attrs), Value::Map(m)) => {
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(err(format!("attribute {extra:?} is not in the object type")));
            }
            e::write_map_len(out, attrs.len() as u32).map_err(err)?;
            for (k, t) in attrs {
                e::write_str(out, k).map_err(err)?;
                write(out, t, m.get(k).unwrap_or(&Value::Null))?;
            }
            Ok(())
        }
        (t, v) => Err(err(format!("value {v:?} does not fit type {}", t.to_json()))),
    }
}

fn infer(v: &Value) -> Type {
    match v {
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::List(items) => Type::list(items.first().map(infer).unwrap_or(Type::String)),
        Value::Map(m) => Type::map(m.values().next().map(infer).unwrap_or(Type::String)),
        _ => Type::String,
    }
}

pub fn decode(ty: &Type, bytes: &[u8]) -> Result<Value, CodecError> {
    let mut cur = Cursor::new(bytes);
    let v = read(&mut cur, ty)?;
    if (cur.position() as usize) != bytes.len() {
        return Err(err("trailing bytes"));
    }
    Ok(v)
}

fn peek(cur: &Cursor<&[u8]>) -> Result<Marker, CodecError> {
    let pos = cur.position() as usize;
    cur.get_ref().get(pos).map(|b| Marker::from_u8(*b)).ok_or_else(|| err("unexpected end"))
}

fn take<'a>(cur: &mut Cursor<&'a [u8]>, n: usize) -> Result<&'a [u8], CodecError> {
    let pos = cur.position() as usize;
    let data: &'a [u8] = cur.get_ref();
    let s = data.get(pos..pos + n).ok_or_else(|| err("unexpected end"))?;
    cur.set_position((pos + n) as u64);
    Ok(s)
}

fn read_string(cur: &mut Cursor<&[u8]>) -> Result<String, CodecError> {
    let len = rmp::decode::read_str_len(cur).map_err(|e| err(format!("{e:?}")))?;
    let raw = take(cur, len as usize)?;
    String::from_utf8(raw.to_vec()).map_err(err)
}

fn read(cur: &mut Cursor<&[u8]>, ty: &Type) -> Result<Value, CodecError> {
    use rmp::decode as d;
    let m = peek(cur)?;
    match m {
        Marker::Null => {
            d::read_nil(cur).map_err(|e| err(format!("{e:?}")))?;
            return Ok(Value::Null);
        }
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => {
            let meta = d::read_ext_meta(cur).map_err(|e| err(format!("{e:?}")))?;
            take(cur, meta.size as usize)?;
            return match meta.typeid {
                0 | 12 => Ok(Value::Unknown),
                other => Err(err(format!("unsupported extension {other}"))),
            };
        }
        _ => {}
    }
    match ty {
        Type::Dynamic => {
            let n = d::read_array_len(cur).map_err(|e| err(format!("{e:?}")))?;
            if n != 2 {
                return Err(err("dynamic value must be [type, value]"));
            }
            let tj = match peek(cur)? {
                Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                    let len = d::read_bin_len(cur).map_err(|e| err(format!("{e:?}")))?;
                    take(cur, len as usize)?.to_vec()
                }
                _ => read_string(cur)?.into_bytes(),
            };
            let inner = Type::from_json(&serde_json::from_slice(&tj).map_err(err)?)?;
            read(cur, &inner)
        }
        Type::Bool => d::read_bool(cur).map(Value::Bool).map_err(|e| err(format!("{e:?}"))),
        Type::Number => match m {
            Marker::F32 => d::read_f32(cur).map(|f| Value::Number(f64::from(f))).map_err(|e| err(format!("{e:?}"))),
            Marker::F64 => d::read_f64(cur).map(Value::Number).map_err(|e| err(format!("{e:?}"))),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let s = read_string(cur)?;
                s.parse::<f64>().map(Value::Number).map_err(|_| err(format!("number {s:?}")))
            }
            Marker::U64 => {
                d::read_int::<u64, _>(cur).map(|n| Value::Number(n as f64)).map_err(|e| err(format!("{e:?}")))
            }
            _ => d::read_int::<i64, _>(cur).map(|n| Value::Number(n as f64)).map_err(|e| err(format!("{e:?}"))),
        },
        Type::String => read_string(cur).map(Value::String),
        Type::List(t) | Type::Set(t) => {
            let n = d::read_array_len(cur).map_err(|e| err(format!("{e:?}")))?;
            (0..n).map(|_| read(cur, t)).collect::<Result<_, _>>().map(Value::List)
        }
        Type::Tuple(ts) => {
            let n = d::read_array_len(cur).map_err(|e| err(format!("{e:?}")))? as usize;
            if n != ts.len() {
                return Err(err("tuple length"));
            }
            ts.iter().map(|t| read(cur, t)).collect::<Result<_, _>>().map(Value::List)
        }
        Type::Map(t) => {
            let n = d::read_map_len(cur).map_err(|e| err(format!("{e:?}")))?;
            let mut m = BTreeMap::new();
            for _ in 0..n {
                let k = read_string(cur)?;
                m.insert(k, read(cur, t)?);
            }
            Ok(Value::Map(m))
        }
        Type::Object(attrs) => {
            let n = d::read_map_len(cur).map_err(|e| err(format!("{e:?}")))?;
            let mut m = BTreeMap::new();
            for _ in 0..n {
                let k = read_string(cur)?;
                let t = attrs.get(&k).ok_or_else(|| err(format!("unexpected attribute {k:?}")))?;
                m.insert(k, read(cur, t)?);
            }
            for k in attrs.keys() {
                m.entry(k.clone()).or_insert(Value::Null);
            }
            Ok(Value::Map(m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_type() -> Type {
        Type::object([
            ("name", Type::String),
            ("limit", Type::Number),
            ("on", Type::Bool),
            ("tags", Type::map(Type::String)),
            ("exts", Type::list(Type::String)),
            ("ids", Type::set(Type::Number)),
            ("nested", Type::object([("a", Type::String), ("b", Type::list(Type::Bool))])),
        ])
    }

    #[test]
    fn round_trips_known_null_unknown_and_nested() {
        let ty = sample_type();
        let v = Value::object([
            ("name", Value::str("orders")),
            ("limit", Value::int(-1)),
            ("on", Value::Unknown),
            ("tags", Value::Map([("k".to_string(), Value::str("v"))].into())),
            ("exts", Value::List(vec![Value::str("a"), Value::Unknown, Value::Null])),
            ("ids", Value::List(vec![Value::Number(1.5), Value::int(1 << 40)])),
            ("nested", Value::object([("a", Value::Null), ("b", Value::List(vec![Value::Bool(true)]))])),
        ]);
        let bytes = encode(&ty, &v).unwrap();
        assert_eq!(decode(&ty, &bytes).unwrap(), v);
    }

    #[test]
    fn unknown_is_extension_zero_and_refined_unknown_decodes() {
        assert_eq!(encode(&Type::String, &Value::Unknown).unwrap(), vec![0xd4, 0, 0]);
        // ext 12 (refined unknown) with a small payload, as Terraform sends for known prefixes.
        assert_eq!(decode(&Type::String, &[0xc7, 3, 12, 0x81, 0x01, 0xc3]).unwrap(), Value::Unknown);
        assert_eq!(decode(&Type::String, &[0xc0]).unwrap(), Value::Null);
    }

    #[test]
    fn absent_object_attributes_are_null_and_bad_input_is_an_error() {
        let ty = Type::object([("a", Type::String), ("b", Type::Number)]);
        // {"a": "x"}
        let bytes = [0x81, 0xa1, b'a', 0xa1, b'x'];
        assert_eq!(decode(&ty, &bytes).unwrap(), Value::object([("a", Value::str("x")), ("b", Value::Null)]));
        assert!(decode(&ty, &[0x81, 0xa1, b'z', 0xc0]).is_err(), "unknown attribute");
        assert!(decode(&Type::String, &[0x05]).is_err(), "int for a string");
        assert!(decode(&Type::String, &[0xa1]).is_err(), "truncated");
        assert!(encode(&Type::String, &Value::Bool(true)).is_err());
    }

    #[test]
    fn numbers_as_float_and_string() {
        assert_eq!(decode(&Type::Number, &[0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0]).unwrap(), Value::Number(2.5));
        assert_eq!(decode(&Type::Number, &[0xa2, b'4', b'2']).unwrap(), Value::int(42));
    }

    #[test]
    fn dynamic_values_carry_their_type() {
        let bytes = encode(&Type::Dynamic, &Value::str("hi")).unwrap();
        assert_eq!(decode(&Type::Dynamic, &bytes).unwrap(), Value::str("hi"));
    }
}
