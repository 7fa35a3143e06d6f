//! The generic planner: what a resource's plan looks like before its own adjustments.

use super::diag::Path;
use super::schema::Schema;
use crate::cty::Value;

pub struct Planned {
    pub state: Value,
    pub requires_replace: Vec<Path>,
}

/// - create: computed attributes the configuration leaves null become unknown;
/// - update: computed-only attributes become unknown when anything configurable changed,
///   unless marked UseStateForUnknown (then the prior value is kept);
/// - attributes marked RequiresReplace whose value changes are reported.
pub fn plan(schema: &Schema, prior: &Value, proposed: &Value, config: &Value) -> Planned {
    if proposed.is_null() {
        return Planned { state: Value::Null, requires_replace: vec![] };
    }
    let mut state = proposed.clone();
    let attrs = &schema.block.attrs;
    // Write-only values live in the configuration only: null in every plan.
    for a in attrs.iter().filter(|a| a.write_only) {
        state.set(a.name, Value::Null);
    }
    if prior.is_null() {
        for a in attrs.iter().filter(|a| a.computed) {
            if config.get(a.name).is_null() {
                state.set(a.name, Value::Unknown);
            }
        }
        return Planned { state, requires_replace: vec![] };
    }
    // A write-only value is never a change by itself (its `*_version` companion is).
    let changed = attrs
        .iter()
        .filter(|a| (a.required || a.optional) && !a.write_only)
        .any(|a| proposed.get(a.name) != prior.get(a.name));
    for a in attrs.iter().filter(|a| a.computed && !a.optional && !a.required) {
        let v = if a.use_state_for_unknown || !changed { prior.get(a.name).clone() } else { Value::Unknown };
        state.set(a.name, v);
    }
    let requires_replace = attrs
        .iter()
        .filter(|a| a.requires_replace && state.get(a.name) != prior.get(a.name))
        .map(|a| Path::attr(a.name))
        .collect();
    Planned { state, requires_replace }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cty::Type;
    use crate::framework::schema::Attr;

    fn schema() -> Schema {
        Schema::new(
            "t",
            vec![
                Attr::computed("id", Type::String, "").keep(),
                Attr::required("name", Type::String, "").replace(),
                Attr::optional("limit", Type::Number, ""),
                Attr::optional_computed("mode", Type::String, ""),
                Attr::computed("status", Type::String, ""),
            ],
        )
    }

    fn obj(id: Value, name: &str, limit: Value, mode: Value, status: Value) -> Value {
        Value::object([("id", id), ("name", Value::str(name)), ("limit", limit), ("mode", mode), ("status", status)])
    }

    #[test]
    fn create_marks_unset_computed_unknown() {
        let config = obj(Value::Null, "a", Value::int(1), Value::Null, Value::Null);
        let p = plan(&schema(), &Value::Null, &config, &config);
        assert_eq!(p.state, obj(Value::Unknown, "a", Value::int(1), Value::Unknown, Value::Unknown));
    }

    #[test]
    fn update_keeps_or_unknowns_and_flags_replacement() {
        let prior = obj(Value::str("x"), "a", Value::int(1), Value::str("standard"), Value::str("ready"));
        // No change: identical plan.
        let p = plan(&schema(), &prior, &prior, &prior);
        assert_eq!(p.state, prior);
        assert!(p.requires_replace.is_empty());
        // In-place change: status unknown, id kept.
        let proposed = obj(Value::str("x"), "a", Value::int(5), Value::str("standard"), Value::str("ready"));
        let p = plan(&schema(), &prior, &proposed, &proposed);
        assert_eq!(p.state, obj(Value::str("x"), "a", Value::int(5), Value::str("standard"), Value::Unknown));
        assert!(p.requires_replace.is_empty());
        // Name change: replacement.
        let proposed = obj(Value::str("x"), "b", Value::int(1), Value::str("standard"), Value::str("ready"));
        let p = plan(&schema(), &prior, &proposed, &proposed);
        assert_eq!(p.requires_replace, vec![Path::attr("name")]);
    }

    #[test]
    fn write_only_values_are_never_planned_nor_a_change() {
        let schema = Schema::new(
            "t",
            vec![
                Attr::required("name", Type::String, ""),
                Attr::optional("secret_wo", Type::String, "").sensitive().write_only(),
                Attr::computed("status", Type::String, ""),
            ],
        );
        let prior =
            Value::object([("name", Value::str("a")), ("secret_wo", Value::Null), ("status", Value::str("ok"))]);
        let proposed =
            Value::object([("name", Value::str("a")), ("secret_wo", Value::str("s3")), ("status", Value::str("ok"))]);
        let p = plan(&schema, &prior, &proposed, &proposed);
        assert_eq!(p.state, prior, "no change, and the value is not in the plan");
        let p = plan(&schema, &Value::Null, &proposed, &proposed);
        assert!(p.state.get("secret_wo").is_null());
    }

    #[test]
    fn destroy_plans_null() {
        let prior = obj(Value::str("x"), "a", Value::int(1), Value::str("s"), Value::str("ready"));
        assert!(plan(&schema(), &prior, &Value::Null, &Value::Null).state.is_null());
    }
}
