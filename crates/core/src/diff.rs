//! What changed between two versions of a record: the `changes` record (`{field: {previous,
//! current}}`) that update events carry.
//!
//! Top-level fields are compared one by one: arrays of scalars (relationship ids, tag names)
//! compare as sets, so reordering is not a change; everything else compares by deep equality (an
//! object or an array of objects moves when anything inside it moves). An absent field and a
//! `null` one are the same: records are documents, and no schema here gives "absent" a meaning of
//! its own. Fields the server keeps (`updated_at`) are ignored, so a write that only touches them is
//! a no-op.

use serde_json::{json, Map, Value};

/// Fields that change on every write and so never count as a change.
pub const IGNORED: &[&str] = &["updated_at"];

fn is_scalar(v: &Value) -> bool {
    !(v.is_array() || v.is_object())
}

/// Equality under the diff rules.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y))
            if x.iter().all(is_scalar) && y.iter().all(is_scalar) =>
        {
            x.iter().all(|v| y.contains(v)) && y.iter().all(|v| x.contains(v))
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            // 1 and 1.0 are the same value to every JSON reader.
            (Some(p), Some(q)) if x.is_f64() || y.is_f64() => p == q,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// `{field: {previous, current}}` for every top-level field that moved.
pub fn changes(previous: &Map<String, Value>, current: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let keys = previous
        .keys()
        .chain(current.keys().filter(|k| !previous.contains_key(*k)));
    for key in keys {
        if IGNORED.contains(&key.as_str()) {
            continue;
        }
        let p = previous.get(key).unwrap_or(&Value::Null);
        let c = current.get(key).unwrap_or(&Value::Null);
        if !same(p, c) {
            out.insert(key.clone(), json!({"previous": p, "current": c}));
        }
    }
    out
}

/// RFC 7386 JSON merge patch: `null` removes, objects merge recursively, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Value::Object(t) = target else {
                return;
            };
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn reports_exactly_the_moved_fields() {
        let a = obj(json!({"id": "1", "name": "A", "tags": ["x"], "n": 1, "updated_at": "t1"}));
        let b = obj(json!({"id": "1", "name": "B", "tags": ["x"], "n": 1.0, "updated_at": "t2"}));
        assert_eq!(
            changes(&a, &b),
            obj(json!({"name": {"previous": "A", "current": "B"}}))
        );
    }

    #[test]
    fn id_arrays_are_sets_objects_are_deep() {
        let a = obj(
            json!({"ids": ["a", "b"], "addr": {"formatted": "x", "raw": {}}, "emails": [{"label": "w", "value": "a@x"}]}),
        );
        let b = obj(
            json!({"ids": ["b", "a", "a"], "addr": {"raw": {}, "formatted": "x"}, "emails": [{"value": "a@x", "label": "w"}]}),
        );
        assert!(changes(&a, &b).is_empty());
        let c = obj(json!({"ids": ["a"], "addr": {"formatted": "y", "raw": {}}, "emails": []}));
        let d = changes(&a, &c);
        assert_eq!(d.len(), 3);
        assert_eq!(d["ids"], json!({"previous": ["a", "b"], "current": ["a"]}));
    }

    #[test]
    fn absent_and_null_are_the_same() {
        let a = obj(json!({"notes": null}));
        let b = obj(json!({}));
        assert!(changes(&a, &b).is_empty());
        let c = obj(json!({"notes": "hi"}));
        assert_eq!(
            changes(&b, &c)["notes"],
            json!({"previous": null, "current": "hi"})
        );
        assert_eq!(
            changes(&c, &b)["notes"],
            json!({"previous": "hi", "current": null})
        );
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge_patch(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
    }
}

/// Property tests over random documents (a small deterministic generator keeps the build lean).
#[cfg(test)]
mod properties {
    use super::*;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const WORDS: &[&str] = &["a", "b", "Jörg", "東京", "emoji 🎉", "", "null", "x\ny"];

    fn scalar(r: &mut Rng) -> Value {
        match r.below(5) {
            0 => Value::Null,
            1 => json!(r.below(2) == 0),
            2 => json!(r.below(100)),
            3 => json!(r.below(100) as f64 / 4.0),
            _ => json!(WORDS[r.below(WORDS.len() as u64) as usize]),
        }
    }

    fn value(r: &mut Rng, depth: u32) -> Value {
        match if depth == 0 { 0 } else { r.below(4) } {
            0 => scalar(r),
            1 => Value::Array(
                (0..r.below(4))
                    .map(|_| json!(WORDS[r.below(WORDS.len() as u64) as usize]))
                    .collect(),
            ),
            2 => Value::Array((0..r.below(3)).map(|_| value(r, depth - 1)).collect()),
            _ => Value::Object(
                (0..r.below(4))
                    .map(|i| (format!("k{i}"), value(r, depth - 1)))
                    .collect(),
            ),
        }
    }

    fn doc(r: &mut Rng) -> Map<String, Value> {
        let mut m = Map::new();
        for i in 0..6 {
            if r.below(4) != 0 {
                m.insert(format!("f{i}"), value(r, 2));
            }
        }
        m
    }

    #[test]
    fn diff_properties_hold_for_random_documents() {
        let mut r = Rng(0x9e3779b97f4a7c15);
        for _ in 0..5000 {
            let a = doc(&mut r);
            let b = doc(&mut r);
            // Nothing changes against itself.
            assert!(changes(&a, &a).is_empty(), "{a:?}");
            let d = changes(&a, &b);
            let back = changes(&b, &a);
            // Symmetric in which fields moved, with previous/current swapped.
            assert_eq!(d.keys().collect::<Vec<_>>().len(), back.len());
            for (k, v) in &d {
                assert_eq!(back[k]["previous"], v["current"]);
                assert_eq!(back[k]["current"], v["previous"]);
                assert!(!same(&v["previous"], &v["current"]));
            }
            // Applying `current` of every change to `a` gives a document with no change against `b`.
            let mut patched = a.clone();
            for (k, v) in &d {
                patched.insert(k.clone(), v["current"].clone());
            }
            assert!(changes(&patched, &b).is_empty(), "{a:?} → {b:?}");
            // Reordering an array of scalars is never a change.
            let mut shuffled = a.clone();
            for v in shuffled.values_mut() {
                if let Value::Array(items) = v {
                    if items.iter().all(is_scalar) {
                        items.reverse();
                    }
                }
            }
            assert!(changes(&a, &shuffled).is_empty());
            // Setting an absent field to null is never a change.
            let mut nulled = a.clone();
            nulled.insert("absent".into(), Value::Null);
            assert!(changes(&a, &nulled).is_empty());
        }
    }
}
