//! `model!`: declares a typed model from one list of fields.
//!
//! ```ignore
//! model! {
//!     /// `dbaas_tenant` as Terraform holds it.
//!     pub struct TenantModel {
//!         id: Field<String> => computed("Tenant id.").keep(),
//!         name: Field<String> => required("Tenant name.").replace(),
//!         // No `=> …`: not a schema attribute (a nested block, or a field of an object that
//!         // is only an element type).
//!         timeouts: Field<Timeouts>,
//!     }
//! }
//! ```
//!
//! generates the struct (every field `pub`), its [`CtyValue`] and [`Model`] impls (decode,
//! encode, `FIELDS`), the schema attributes (`TenantModel::attrs()`, each built with the
//! [`Attr`] constructor named after `=>` and the listed modifiers; `nested(…)` makes a nested
//! attribute from the field's own model) and one constant per attribute name
//! (`TenantModel::name == "name"`) for diagnostic paths. The Rust field name is the
//! attribute name.
//!
//! A hand-written `macro_rules!` rather than a crate: no maintained Rust crate models
//! Terraform's cty values (the provider frameworks are Go), a proc-macro crate would be a
//! second crate to build and maintain for this one use, and serde cannot express the
//! null/unknown distinction or report errors at attribute paths.
//!
//! [`CtyValue`]: crate::framework::model::CtyValue
//! [`Model`]: crate::framework::model::Model
//! [`Attr`]: crate::framework::schema::Attr

macro_rules! model {
    // One schema attribute. Internal rules first so the public rule never sees `@attr`.
    (@attr $field:ident, $ty:ty, nested ($desc:expr) $(. $modifier:ident ())*) => {
        $crate::framework::schema::Attr::nested_object(
            stringify!($field),
            <$ty as $crate::framework::model::Object>::attrs(),
            $desc,
        ) $(. $modifier ())*
    };
    (@attr $field:ident, $ty:ty, $kind:ident ($desc:expr) $(. $modifier:ident ())*) => {
        $crate::framework::schema::Attr::$kind(
            stringify!($field),
            <$ty as $crate::framework::model::CtyValue>::ty(),
            $desc,
        ) $(. $modifier ())*
    };

    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $field:ident : $ty:ty $( => $kind:ident ($desc:expr) $(. $modifier:ident ())* )?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        $vis struct $name {
            $( pub $field: $ty, )*
        }

        // Constants named like the fields (lower case, so `Model::name` reads as the attribute
        // it names); not every model names every attribute in a diagnostic.
        #[allow(non_upper_case_globals, dead_code)]
        impl $name {
            $( pub const $field: &'static str = stringify!($field); )*

            /// The schema attributes, in declaration order.
            pub fn attrs() -> Vec<$crate::framework::schema::Attr> {
                vec![$( $( $crate::framework::model_macro::model!(
                    @attr $field, $ty, $kind ($desc) $(. $modifier ())*
                ), )? )*]
            }
        }

        impl $crate::framework::model::CtyValue for $name {
            fn ty() -> $crate::cty::Type {
                $crate::cty::Type::Object(
                    [$( (
                        stringify!($field).to_string(),
                        <$ty as $crate::framework::model::CtyValue>::ty(),
                    ) ),*]
                    .into_iter()
                    .collect(),
                )
            }

            fn decode(
                v: &$crate::cty::Value,
                at: &$crate::framework::diag::Path,
            ) -> Result<Self, $crate::framework::model::ModelError> {
                let m = $crate::framework::model::object_fields(v, at, <Self as $crate::framework::model::Model>::FIELDS)?;
                Ok(Self {
                    $( $field: <$ty as $crate::framework::model::CtyValue>::decode(
                        // An absent attribute is null, as in `Value::get`.
                        m.get(stringify!($field)).unwrap_or(&$crate::cty::Value::Null),
                        &at.clone().then(stringify!($field)),
                    )?, )*
                })
            }

            fn encode(&self) -> $crate::cty::Value {
                $crate::cty::Value::Map(
                    [$( (
                        stringify!($field).to_string(),
                        $crate::framework::model::CtyValue::encode(&self.$field),
                    ) ),*]
                    .into_iter()
                    .collect(),
                )
            }
        }

        impl $crate::framework::model::Object for $name {
            fn attrs() -> Vec<$crate::framework::schema::Attr> {
                $name::attrs()
            }
        }

        impl $crate::framework::model::Model for $name {
            const FIELDS: &'static [&'static str] = &[$( stringify!($field) ),*];
        }
    };
}

pub(crate) use model;

#[cfg(test)]
mod tests {
    use crate::cty::{Type, Value};
    use crate::framework::diag::Path;
    use crate::framework::model::{CtyValue, Field, List, Map, Model, ModelError};

    model! {
        struct Outer {
            id: Field<String> => computed("Id.").keep(),
            limit: Field<i64> => optional("Limit.").replace(),
            ratio: Field<f64> => optional("Ratio."),
            on: Field<bool> => optional_computed("On."),
            exts: Field<List<String>> => optional("Extensions."),
            tags: Field<Map<String>> => optional("Tags."),
            inner: Field<Inner> => nested("Inner."),
            items: Field<List<Inner>> => computed("Items."),
            block: Field<Inner>,
        }
    }

    model! {
        struct Inner {
            env: Field<String> => required("Env."),
        }
    }

    fn sample() -> Value {
        Value::object([
            ("id", Value::Unknown),
            ("limit", Value::int(-1)),
            ("ratio", Value::Number(2.5)),
            ("on", Value::Null),
            ("exts", Value::List(vec![Value::str("a"), Value::Unknown, Value::Null])),
            ("tags", Value::Map([("k".to_string(), Value::str("v")), ("u".to_string(), Value::Unknown)].into())),
            ("inner", Value::object([("env", Value::str("prod"))])),
            ("items", Value::List(vec![Value::object([("env", Value::Null)])])),
            ("block", Value::Null),
        ])
    }

    fn error(v: &Value) -> ModelError {
        Outer::from_value(v).expect_err("should not decode")
    }

    #[test]
    fn null_unknown_and_known_round_trip_exactly() {
        let m = Outer::from_value(&sample()).unwrap();
        assert_eq!(m.id, Field::Unknown);
        assert_eq!(m.limit, Field::Known(-1));
        assert_eq!(m.on, Field::Null);
        assert_eq!(m.exts.all_known(), None, "one element is unknown");
        assert_eq!(m.tags.entry("k"), Field::str("v"));
        assert_eq!(m.tags.entry("absent"), Field::Null);
        assert_eq!(m.inner.known().and_then(|i| i.env.as_str()), Some("prod"));
        assert_eq!(m.to_value(), sample());
        // Absent attributes are null, as Terraform's decoding makes them.
        assert_eq!(Outer::from_value(&Value::Map(Default::default())).unwrap(), Outer::default());
    }

    #[test]
    fn malformed_values_are_errors_at_their_path() {
        let mut v = sample();
        v.set("limit", Value::Number(2.5));
        assert_eq!(error(&v).path, Path::attr("limit"));
        assert!(error(&v).message.contains("whole number"), "{}", error(&v).message);

        let mut v = sample();
        v.set("exts", Value::List(vec![Value::str("a"), Value::Bool(true)]));
        assert_eq!(error(&v).path, Path::attr("exts").index(1));

        let mut v = sample();
        v.set("tags", Value::Map([("k".to_string(), Value::int(1))].into()));
        assert_eq!(error(&v).path, Path::attr("tags").key("k"));

        let mut v = sample();
        v.set("inner", Value::object([("env", Value::str("x")), ("extra", Value::Null)]));
        assert_eq!(error(&v).path, Path::attr("inner"));
        assert!(error(&v).message.contains("\"extra\""), "{}", error(&v).message);

        let mut v = sample();
        v.set("items", Value::List(vec![Value::object([("env", Value::int(3))])]));
        assert_eq!(error(&v).path, Path::attr("items").index(0).then("env"));

        assert_eq!(error(&Value::str("x")).path, Path::default());
    }

    #[test]
    fn names_types_and_schema_come_from_the_one_declaration() {
        assert_eq!(Outer::limit, "limit");
        assert_eq!(Outer::FIELDS, ["id", "limit", "ratio", "on", "exts", "tags", "inner", "items", "block"]);
        assert_eq!(Outer::ty().to_json(), {
            let inner = Type::object([("env", Type::String)]);
            Type::object([
                ("id", Type::String),
                ("limit", Type::Number),
                ("ratio", Type::Number),
                ("on", Type::Bool),
                ("exts", Type::list(Type::String)),
                ("tags", Type::map(Type::String)),
                ("inner", inner.clone()),
                ("items", Type::list(inner.clone())),
                ("block", inner),
            ])
            .to_json()
        });
        let attrs = Outer::attrs();
        let names: Vec<&str> = attrs.iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            ["id", "limit", "ratio", "on", "exts", "tags", "inner", "items"],
            "block is not an attribute"
        );
        assert!(attrs[0].computed && attrs[0].use_state_for_unknown && !attrs[0].optional);
        assert!(attrs[1].optional && attrs[1].requires_replace);
        assert!(attrs[3].optional && attrs[3].computed);
        let inner = attrs[6].nested.as_ref().expect("nested attribute");
        assert_eq!((inner[0].name, inner[0].required, inner[0].description), ("env", true, "Env."));
    }
}
