//! RFC 7386 JSON Merge Patch: [`diff`] makes the patch that turns one state
//! into the next, [`apply`] applies it. States never contain `null`, so the
//! patch's `null` (remove a member) is unambiguous.

use serde_json::{Map, Value};

/// The merge patch that turns `old` into `new`, or `None` when they are
/// equal. Objects are diffed member by member; anything else is replaced.
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for (k, vb) in b {
                match a.get(k) {
                    Some(va) => {
                        if let Some(p) = diff(va, vb) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), vb.clone());
                    }
                }
            }
            for k in a.keys() {
                if !b.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// Applies a merge patch to `target` in place (RFC 7386 §2).
pub fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                apply(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_then_apply_gives_the_new_value() {
        let old = json!({"a": 1, "b": {"c": 2, "d": [1, 2]}, "gone": true});
        let new = json!({"a": 1, "b": {"c": 3, "d": [1, 2, 3]}, "e": "x"});
        let patch = diff(&old, &new).expect("they differ");
        assert_eq!(
            patch,
            json!({"b": {"c": 3, "d": [1, 2, 3]}, "e": "x", "gone": null})
        );
        let mut v = old.clone();
        apply(&mut v, &patch);
        assert_eq!(v, new);
        assert_eq!(diff(&new, &new), None);
    }

    #[test]
    fn rfc7386_examples() {
        let mut t = json!({"a": "b"});
        apply(&mut t, &json!({"a": "c"}));
        assert_eq!(t, json!({"a": "c"}));
        let mut t = json!({"a": [{"b": "c"}]});
        apply(&mut t, &json!({"a": [1]}));
        assert_eq!(t, json!({"a": [1]}));
        let mut t = json!(["a", "b"]);
        apply(&mut t, &json!({"a": {"bb": {"ccc": null}}}));
        assert_eq!(t, json!({"a": {"bb": {}}}));
    }
}
