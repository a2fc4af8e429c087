//! The first difference between two JSON documents: its path and the value on each side.
//!
//! A checkpoint's model config is compared with a model's as data (both serialised), so a new
//! config field needs no edit here. The walk is depth first: an object's keys present on both
//! sides first (in the map's order: by key, with `serde_json`'s default features), then keys
//! only on the left, then keys only on the right;
//! arrays holding objects or arrays element by element, any other array as one value. An array
//! element is named by its `name` (a string member of the element, or of one of its object
//! members, e.g. a modality's `kind.name`) where both sides have the same one, else by its
//! index: `modalities[label].weight`, `modalities[1].kind.name`. When one array is longer and
//! the common part is equal, the difference is its first extra element, absent on the other
//! side. Numbers are equal when their values are (`1` and `1.0` are).

use serde_json::Value;

/// Where two documents first differ; `None` is a value absent on that side.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Difference {
    /// Keys and element names from the root, e.g. `modalities[label].weight` (empty at the
    /// root).
    pub path: String,
    /// The left document's value there.
    pub left: Option<Value>,
    /// The right document's value there.
    pub right: Option<Value>,
}

impl Difference {
    /// A value as compact JSON, or `(absent)`.
    pub fn show(v: Option<&Value>) -> String {
        v.map_or_else(|| "(absent)".to_string(), Value::to_string)
    }
}

/// The first difference between `left` and `right`, or `None` when they are equal.
pub(super) fn first_difference(left: &Value, right: &Value) -> Option<Difference> {
    diff_at(String::new(), left, right)
}

fn diff_at(path: String, left: &Value, right: &Value) -> Option<Difference> {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            let both = l
                .iter()
                .filter_map(|(k, lv)| r.get(k).map(|rv| (k, lv, rv)));
            for (k, lv, rv) in both {
                if let Some(d) = diff_at(join(&path, k), lv, rv) {
                    return Some(d);
                }
            }
            if let Some((k, lv)) = l.iter().find(|(k, _)| !r.contains_key(*k)) {
                return Some(one_sided(join(&path, k), Some(lv), None));
            }
            r.iter()
                .find(|(k, _)| !l.contains_key(*k))
                .map(|(k, rv)| one_sided(join(&path, k), None, Some(rv)))
        }
        (Value::Array(l), Value::Array(r)) if has_containers(l) || has_containers(r) => {
            for (i, (lv, rv)) in l.iter().zip(r).enumerate() {
                let at = match (name_of(lv), name_of(rv)) {
                    (Some(a), Some(b)) if a == b => format!("{path}[{a}]"),
                    _ => format!("{path}[{i}]"),
                };
                if let Some(d) = diff_at(at, lv, rv) {
                    return Some(d);
                }
            }
            let n = l.len().min(r.len());
            let (lv, rv) = (l.get(n), r.get(n));
            let extra = lv.or(rv)?;
            let at = match name_of(extra) {
                Some(a) => format!("{path}[{a}]"),
                None => format!("{path}[{n}]"),
            };
            Some(one_sided(at, lv, rv))
        }
        _ if same(left, right) => None,
        _ => Some(one_sided(path, Some(left), Some(right))),
    }
}

fn one_sided(path: String, left: Option<&Value>, right: Option<&Value>) -> Difference {
    Difference {
        path,
        left: left.cloned(),
        right: right.cloned(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn has_containers(a: &[Value]) -> bool {
    a.iter().any(|v| v.is_object() || v.is_array())
}

/// The element's `name`, or that of its first object member that has one.
fn name_of(v: &Value) -> Option<&str> {
    let o = v.as_object()?;
    o.get("name").and_then(Value::as_str).or_else(|| {
        o.values()
            .find_map(|m| m.as_object()?.get("name")?.as_str())
    })
}

/// Equal values; numbers compare by value.
fn same(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) if a != b => {
            (a.is_f64() || b.is_f64()) && a.as_f64() == b.as_f64()
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(a: Value, b: Value) -> Option<(String, String, String)> {
        first_difference(&a, &b).map(|d| {
            (
                d.path,
                Difference::show(d.left.as_ref()),
                Difference::show(d.right.as_ref()),
            )
        })
    }

    fn d(path: &str, left: &str, right: &str) -> Option<(String, String, String)> {
        Some((path.into(), left.into(), right.into()))
    }

    #[test]
    fn equal_documents_have_no_difference() {
        let v = json!({"a": [1, 2], "b": {"c": null, "d": [{"name": "x"}]}, "e": 0.5});
        assert_eq!(diff(v.clone(), v), None);
        assert_eq!(diff(json!({"a": 1}), json!({"a": 1.0})), None);
        assert_eq!(diff(json!([1, 2.0]), json!([1.0, 2])), None);
    }

    #[test]
    fn nested_objects_name_the_path() {
        assert_eq!(
            diff(json!({"a": {"b": {"c": 1}}}), json!({"a": {"b": {"c": 2}}})),
            d("a.b.c", "1", "2")
        );
        // Keys on both sides first, then a key only on the left, then only on the right.
        assert_eq!(
            diff(
                json!({"a": 1, "b": {"x": 1}, "c": 3}),
                json!({"b": {"x": 2}, "c": 3, "d": 4})
            ),
            d("b.x", "1", "2")
        );
        assert_eq!(
            diff(json!({"a": 1, "c": 3}), json!({"c": 3, "d": 4})),
            d("a", "1", "(absent)")
        );
        assert_eq!(
            diff(json!({"c": 3}), json!({"c": 3, "d": "poe"})),
            d("d", "(absent)", "\"poe\"")
        );
        // Different types are one difference at that path.
        assert_eq!(
            diff(json!({"a": {"b": 1}}), json!({"a": [1]})),
            d("a", "{\"b\":1}", "[1]")
        );
        assert_eq!(diff(json!(1), json!("1")), d("", "1", "\"1\""));
    }

    #[test]
    fn numbers_compare_by_value_and_print_as_written() {
        assert_eq!(
            diff(json!({"w": 50.0}), json!({"w": 1.0})),
            d("w", "50.0", "1.0")
        );
        assert_eq!(diff(json!({"n": 3}), json!({"n": 4})), d("n", "3", "4"));
        assert_eq!(diff(json!({"n": -1}), json!({"n": 1})), d("n", "-1", "1"));
        assert_eq!(
            diff(json!({"w": 0.1}), json!({"w": 0.1f32})),
            d("w", "0.1", &f64::from(0.1f32).to_string())
        );
        assert_eq!(
            diff(json!({"n": u64::MAX}), json!({"n": -1})),
            d("n", &u64::MAX.to_string(), "-1")
        );
    }

    #[test]
    fn arrays_of_values_are_one_value() {
        assert_eq!(
            diff(json!({"h": [16, 16]}), json!({"h": [16, 32]})),
            d("h", "[16,16]", "[16,32]")
        );
        assert_eq!(
            diff(json!({"h": [16]}), json!({"h": [16, 16]})),
            d("h", "[16]", "[16,16]")
        );
        assert_eq!(
            diff(json!({"h": []}), json!({"h": [1]})),
            d("h", "[]", "[1]")
        );
    }

    #[test]
    fn array_elements_are_named_where_both_sides_agree() {
        let m = |name: &str, w: f64| json!({"kind": {"type": "label", "name": name}, "weight": w});
        assert_eq!(
            diff(
                json!({"m": [m("a", 1.0), m("b", 50.0)]}),
                json!({"m": [m("a", 1.0), m("b", 1.0)]})
            ),
            d("m[b].weight", "50.0", "1.0")
        );
        // Another name at the same place: the index.
        assert_eq!(
            diff(
                json!({"m": [m("a", 1.0), m("b", 1.0)]}),
                json!({"m": [m("a", 1.0), m("c", 1.0)]})
            ),
            d("m[1].kind.name", "\"b\"", "\"c\"")
        );
        // A top-level name, and elements without one.
        assert_eq!(
            diff(
                json!([{"name": "x", "v": 1}]),
                json!([{"name": "x", "v": 2}])
            ),
            d("[x].v", "1", "2")
        );
        assert_eq!(
            diff(json!([[1], [2]]), json!([[1], [3]])),
            d("[1]", "[2]", "[3]")
        );
    }

    #[test]
    fn arrays_of_different_length() {
        let m = |name: &str| json!({"kind": {"name": name}});
        // The common prefix first.
        assert_eq!(
            diff(json!([m("a"), m("b")]), json!([m("x")])),
            d("[0].kind.name", "\"a\"", "\"x\"")
        );
        // Then the first element only one side has.
        assert_eq!(
            diff(json!({"m": [m("a"), m("b")]}), json!({"m": [m("a")]})),
            d("m[b]", "{\"kind\":{\"name\":\"b\"}}", "(absent)")
        );
        assert_eq!(
            diff(json!([[1]]), json!([[1], [2], [3]])),
            d("[1]", "(absent)", "[2]")
        );
    }
}
