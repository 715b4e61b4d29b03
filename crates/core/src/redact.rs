//! Field redaction in the log (`log_redact`): fields named by the deployment are kept out of the
//! stored event, while receivers still get them.
//!
//! A path names a field of an event's `data`: `data.primary_email`, `data.address.formatted`,
//! `data.emails[*].value` (every element of an array). A batch event (data is an array of objects)
//! is redacted object by object. The same field in `changes` (its `previous` and `current`) is
//! redacted too: a changed email would otherwise be stored there twice.
//!
//! [`Redaction::apply`] replaces each value with [`MARK`] and returns what it took out, as JSON
//! pointers to values; the store keeps that sealed (encrypted) beside the event only while a
//! delivery of it may still be sent, and [`restore`] puts the values back for the attempt.

use serde_json::{json, Value};

/// What a redacted value reads as in the stored event (and so in the log).
pub const MARK: &str = "[redacted]";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Each,
}

/// The deployment's redacted paths, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction {
    paths: Vec<Vec<Seg>>,
}

impl Redaction {
    /// Parses `log_redact`'s paths; the error names the path and what is wrong with it.
    pub fn parse<S: AsRef<str>>(paths: &[S]) -> Result<Redaction, String> {
        let mut out = Vec::new();
        for p in paths {
            let p = p.as_ref().trim();
            out.push(parse_path(p).map_err(|e| format!("`{p}`: {e}"))?);
        }
        Ok(Redaction { paths: out })
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Redacts `data` and `changes` in place; what was taken out (`None` when nothing was).
    pub fn apply(&self, data: &mut Value, changes: &mut Option<Value>) -> Option<Value> {
        let (mut from_data, mut from_changes) = (Vec::new(), Vec::new());
        for path in &self.paths {
            // `data[*].x` and `data.x` mean the same: the field of each object of a batch, or of
            // the one object of any other event.
            let path: &[Seg] = match path.split_first() {
                Some((Seg::Each, rest)) => rest,
                _ => path,
            };
            match data {
                Value::Array(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        take(item, path, &format!("/{i}"), &mut from_data);
                    }
                }
                _ => take(data, path, "", &mut from_data),
            }
            // `changes` is keyed by the top-level field: {field: {previous, current}}.
            if let (Some(Seg::Key(field)), Some(Value::Object(c))) =
                (path.first(), changes.as_mut())
            {
                if let Some(Value::Object(change)) = c.get_mut(field) {
                    for side in ["previous", "current"] {
                        if let Some(v) = change.get_mut(side) {
                            let at = format!("/{}/{side}", escape(field));
                            take(v, &path[1..], &at, &mut from_changes);
                        }
                    }
                }
            }
        }
        if from_data.is_empty() && from_changes.is_empty() {
            return None;
        }
        Some(json!({"data": from_data, "changes": from_changes}))
    }
}

/// Puts the values [`Redaction::apply`] took out back into `data` and `changes`.
pub fn restore(data: &mut Value, changes: &mut Option<Value>, taken: &Value) {
    let put = |target: &mut Value, list: &Value| {
        for pair in list.as_array().into_iter().flatten() {
            if let (Some(pointer), Some(v)) = (pair[0].as_str(), pair.get(1)) {
                if let Some(slot) = target.pointer_mut(pointer) {
                    *slot = v.clone();
                }
            }
        }
    };
    put(data, &taken["data"]);
    if let Some(c) = changes.as_mut() {
        put(c, &taken["changes"]);
    }
}

/// What [`Redaction::apply`] took out of a batch, after the objects at `removed` (ascending) were
/// taken out of the batch (an erasure): their values go, the later objects' move down. `None` when
/// nothing is left.
pub fn without_items(taken: &Value, removed: &[usize]) -> Option<Value> {
    let data: Vec<Value> = taken["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            let pointer = pair[0].as_str()?;
            let rest = pointer.strip_prefix('/')?;
            let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let index: usize = index.parse().ok()?;
            let to = crate::erasure::renumber(index, removed)?;
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!("/{tail}")
            };
            Some(json!([format!("/{to}{tail}"), pair[1].clone()]))
        })
        .collect();
    let changes = taken["changes"].clone();
    let no_changes = changes.as_array().is_none_or(|c| c.is_empty());
    if data.is_empty() && no_changes {
        return None;
    }
    Some(json!({"data": data, "changes": changes}))
}

fn parse_path(p: &str) -> Result<Vec<Seg>, String> {
    let rest = p
        .strip_prefix("data")
        .ok_or("a path starts with `data` (e.g. data.primary_email)")?;
    let mut segs = Vec::new();
    let mut rest = rest;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[*]") {
            segs.push(Seg::Each);
            rest = r;
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "`{name}` is not a field name (letters, digits, _ and -)"
                ));
            }
            segs.push(Seg::Key(name.to_string()));
            rest = &r[end..];
        } else {
            return Err(format!("unexpected `{rest}`: use .field or [*]"));
        }
    }
    if !segs.iter().any(|s| matches!(s, Seg::Key(_))) {
        return Err("name a field under data".into());
    }
    Ok(segs)
}

/// Replaces what `path` names under `v` with [`MARK`], noting each value at `at` + its pointer.
fn take(v: &mut Value, path: &[Seg], at: &str, out: &mut Vec<Value>) {
    let Some((first, rest)) = path.split_first() else {
        if v.is_null() || *v == Value::String(MARK.into()) {
            return;
        }
        let old = std::mem::replace(v, Value::String(MARK.into()));
        out.push(json!([at, old]));
        return;
    };
    match (first, v) {
        (Seg::Key(k), Value::Object(m)) => {
            if let Some(child) = m.get_mut(k) {
                take(child, rest, &format!("{at}/{}", escape(k)), out);
            }
        }
        (Seg::Each, Value::Array(items)) => {
            for (i, item) in items.iter_mut().enumerate() {
                take(item, rest, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A key as a JSON pointer token.
fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(paths: &[&str]) -> Redaction {
        Redaction::parse(paths).unwrap()
    }

    #[test]
    fn a_field_is_marked_and_restored_exactly() {
        let red = r(&[
            "data.primary_email",
            "data.emails[*].value",
            "data.address.formatted",
        ]);
        let original = json!({"id": "c1", "primary_email": "a@x.com",
            "emails": [{"label": "Work", "value": "a@x.com"}, {"label": "Home", "value": "b@y.org"}],
            "address": {"formatted": "1 Main St", "raw": {}}, "first_name": "Ada"});
        let mut data = original.clone();
        let mut changes = None;
        let taken = red.apply(&mut data, &mut changes).unwrap();
        assert_eq!(data["primary_email"], MARK);
        assert_eq!(data["emails"][1]["value"], MARK);
        assert_eq!(data["emails"][1]["label"], "Home");
        assert_eq!(data["address"]["formatted"], MARK);
        assert_eq!(data["first_name"], "Ada");
        assert!(!data.to_string().contains("a@x.com"));
        restore(&mut data, &mut changes, &taken);
        assert_eq!(data, original);
    }

    #[test]
    fn changes_of_a_redacted_field_are_redacted_too() {
        let red = r(&["data.primary_email"]);
        let mut data = json!({"id": "c1", "primary_email": "new@x.com"});
        let original_changes = json!({"primary_email": {"previous": "old@x.com", "current": "new@x.com"},
                                      "notes": {"previous": null, "current": "hi"}});
        let mut changes = Some(original_changes.clone());
        let taken = red.apply(&mut data, &mut changes).unwrap();
        let c = changes.clone().unwrap();
        assert_eq!(c["primary_email"]["previous"], MARK);
        assert_eq!(c["primary_email"]["current"], MARK);
        assert_eq!(c["notes"]["current"], "hi");
        restore(&mut data, &mut changes, &taken);
        assert_eq!(changes.unwrap(), original_changes);
        assert_eq!(data["primary_email"], "new@x.com");
    }

    #[test]
    fn a_batch_is_redacted_object_by_object() {
        let red = r(&["data.primary_email"]);
        let original = json!([{"id": "1", "primary_email": "a@x.com"}, {"id": "2"}, {"id": "3", "primary_email": "c@x.com"}]);
        let mut data = original.clone();
        let mut changes = None;
        let taken = red.apply(&mut data, &mut changes).unwrap();
        assert_eq!(data[0]["primary_email"], MARK);
        assert!(data[1].get("primary_email").is_none());
        assert_eq!(data[2]["primary_email"], MARK);
        restore(&mut data, &mut changes, &taken);
        assert_eq!(data, original);
    }

    #[test]
    fn nothing_to_redact_takes_nothing() {
        let red = r(&["data.primary_email"]);
        let mut data = json!({"id": "1", "primary_email": null, "x": 1});
        assert_eq!(red.apply(&mut data, &mut None), None);
        assert_eq!(data["primary_email"], Value::Null);
        assert_eq!(Redaction::default().apply(&mut data, &mut None), None);
    }

    #[test]
    fn paths_are_checked() {
        for (bad, says) in [
            ("primary_email", "starts with `data`"),
            ("data", "name a field"),
            ("data[*]", "name a field"),
            ("data.a..b", "not a field name"),
            ("data.a[0]", "unexpected"),
            ("data.a b", "not a field name"),
        ] {
            let e = Redaction::parse(&[bad]).unwrap_err();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
        assert!(Redaction::parse(&["data[*].email", "data.a-b_c.d[*]"]).is_ok());
    }

    #[test]
    fn a_rewritten_batch_keeps_the_values_of_the_objects_left() {
        let red = r(&["data.primary_email"]);
        let mut data = json!([{"primary_email": "a@x.com"}, {"primary_email": "b@x.com"}, {"primary_email": "c@x.com"}]);
        let taken = red.apply(&mut data, &mut None).unwrap();
        // The middle object is erased: the batch keeps a and c, at 0 and 1.
        let mut rewritten = json!([data[0].clone(), data[2].clone()]);
        let kept = without_items(&taken, &[1]).unwrap();
        restore(&mut rewritten, &mut None, &kept);
        assert_eq!(
            rewritten,
            json!([{"primary_email": "a@x.com"}, {"primary_email": "c@x.com"}])
        );
        assert!(!kept.to_string().contains("b@x.com"));
        // Only the erased object had values: nothing is left to keep.
        let mut one = json!([{"primary_email": "a@x.com"}, {"id": 2}]);
        let taken = red.apply(&mut one, &mut None).unwrap();
        assert_eq!(without_items(&taken, &[0]), None);
    }

    #[test]
    fn a_leading_each_means_every_object_of_a_batch_or_the_one_object() {
        let red = r(&["data[*].primary_email"]);
        let mut one = json!({"id": "1", "primary_email": "a@x.com"});
        let mut changes =
            Some(json!({"primary_email": {"previous": "o@x.com", "current": "a@x.com"}}));
        assert!(red.apply(&mut one, &mut changes).is_some());
        assert_eq!(one["primary_email"], MARK);
        assert_eq!(changes.unwrap()["primary_email"]["previous"], MARK);
        let mut batch = json!([{"primary_email": "a@x.com"}, {"primary_email": "b@x.com"}]);
        red.apply(&mut batch, &mut None).unwrap();
        assert_eq!(
            batch,
            json!([{"primary_email": MARK}, {"primary_email": MARK}])
        );
    }
}
