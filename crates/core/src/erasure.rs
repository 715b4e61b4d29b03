//! Right to erasure: what erasing one record does to one stored event.
//!
//! A tenant asks to erase a record (`contact` `c_17`). Every stored event that carries it must stop
//! carrying it: an event *about* the record is dropped whole (with its deliveries and their
//! attempts), a batch that carries it among other objects is rewritten without it (the deliveries
//! of the removed object go, the others are renumbered), and one that carried only it is dropped.
//! This module decides, per event, which of those applies; the stores apply the verdict inside one
//! transaction per step (`Store::erasure_step`).
//!
//! Why by subject and id, not by searching the text: an event about a deal that names the contact
//! only as `contact_id` carries a reference, not the person's data, and stays. The stores narrow
//! the candidates with a text search for the id (cheap, over-inclusive); the verdict here is exact.

use crate::catalog;
use crate::text::{self, FieldError};
use serde_json::Value;

/// What to erase: one record of one subject type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub entity_type: String,
    pub entity_id: String,
}

/// What happens to one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The event doesn't carry the record.
    Keep,
    /// The event is about the record, or carried nothing else: remove it and all it led to.
    Drop,
    /// A batch (or a delete of several ids) that carried the record among others: store `data`
    /// instead; `removed` are the item positions taken out (ascending), whose one-object
    /// deliveries go while the later ones move down.
    Rewrite { data: Value, removed: Vec<usize> },
}

impl Target {
    /// Validates an erasure request: a known subject type and a one-line id.
    pub fn parse(entity_type: &str, entity_id: &str) -> Result<Target, FieldError> {
        let subjects = subjects();
        if !subjects.contains(&entity_type) {
            return Err(FieldError::new(
                "entity_type",
                "invalid",
                format!(
                    "entity_type must be one of: {} (got {entity_type:?})",
                    subjects.join(", ")
                ),
            ));
        }
        if entity_id.is_empty() || entity_id.len() > 256 {
            return Err(FieldError::new(
                "entity_id",
                "invalid",
                "entity_id must be 1 to 256 bytes",
            ));
        }
        text::check_line("entity_id", entity_id)?;
        Ok(Target {
            entity_type: entity_type.to_string(),
            entity_id: entity_id.to_string(),
        })
    }

    /// The verdict for one stored event (its name, its entity id column and its `data`).
    pub fn judge(&self, event_type: &str, entity_id: Option<&str>, data: &Value) -> Verdict {
        let subject = catalog::lookup(event_type)
            .map(|e| e.subject)
            .unwrap_or_else(|| event_type.split('.').next().unwrap_or(event_type));
        if subject != self.entity_type {
            return Verdict::Keep;
        }
        if entity_id == Some(self.entity_id.as_str()) {
            return Verdict::Drop;
        }
        // The objects a batch carries, or the ids a delete names.
        let (items, is_ids) = match data {
            Value::Array(items) => (items, false),
            Value::Object(m) => match m.get("ids") {
                Some(Value::Array(ids)) if event_type.ends_with(".deleted") => (ids, true),
                _ => {
                    return match self.is_it(data) {
                        true => Verdict::Drop,
                        false => Verdict::Keep,
                    }
                }
            },
            _ => return Verdict::Keep,
        };
        let removed: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, v)| match is_ids {
                true => self.same_id(v),
                false => self.is_it(v),
            })
            .map(|(i, _)| i)
            .collect();
        if removed.is_empty() {
            return Verdict::Keep;
        }
        if removed.len() == items.len() {
            return Verdict::Drop;
        }
        let kept: Vec<Value> = items
            .iter()
            .enumerate()
            .filter(|(i, _)| removed.binary_search(i).is_err())
            .map(|(_, v)| v.clone())
            .collect();
        let data = match is_ids {
            false => Value::Array(kept),
            true => {
                let mut m = data.as_object().cloned().unwrap_or_default();
                m.insert("ids".into(), Value::Array(kept));
                Value::Object(m)
            }
        };
        Verdict::Rewrite { data, removed }
    }

    /// An object whose `id` is the record's.
    fn is_it(&self, v: &Value) -> bool {
        v.get("id").is_some_and(|id| self.same_id(id))
    }

    /// An id written as a string, or as a number whose text is the record's id.
    fn same_id(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => *s == self.entity_id,
            Value::Number(n) => n.to_string() == self.entity_id,
            _ => false,
        }
    }
}

/// Where item `index` of a rewritten event moves to, or `None` if it was removed.
pub fn renumber(index: usize, removed: &[usize]) -> Option<usize> {
    match removed.binary_search(&index) {
        Ok(_) => None,
        Err(before) => Some(index - before),
    }
}

/// Whether any object in `v` (at any depth) has the record's id: a stored answer (an idempotent
/// request's response) that shows the record.
pub fn shows(target: &Target, v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.get("id").is_some_and(|id| target.same_id(id)) || m.values().any(|v| shows(target, v))
        }
        Value::Array(items) => items.iter().any(|v| shows(target, v)),
        _ => false,
    }
}

/// The subject types a record can be erased from, in catalog order (not Hookline's own).
fn subjects() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for e in catalog::CATALOG {
        if e.origin != catalog::Origin::Operational && !out.contains(&e.subject) {
            out.push(e.subject);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c17() -> Target {
        Target::parse("contact", "c_17").unwrap()
    }

    #[test]
    fn an_event_about_the_record_is_dropped() {
        let t = c17();
        let data = json!({"id": "c_17", "email": "a@x.com"});
        assert_eq!(
            t.judge("contact.updated", Some("c_17"), &data),
            Verdict::Drop
        );
        // Its id inside data, whatever the entity column says.
        assert_eq!(t.judge("contact.updated", None, &data), Verdict::Drop);
    }

    #[test]
    fn another_subject_naming_the_id_is_kept() {
        let t = c17();
        let deal = json!({"id": "d_1", "contact_id": "c_17"});
        assert_eq!(t.judge("deal.created", Some("d_1"), &deal), Verdict::Keep);
        let same_id_other_kind = json!({"id": "c_17"});
        assert_eq!(
            t.judge("deal.created", Some("c_17"), &same_id_other_kind),
            Verdict::Keep
        );
        assert_eq!(
            t.judge("contact.updated", Some("c_170"), &json!({"id": "c_170"})),
            Verdict::Keep
        );
    }

    #[test]
    fn a_batch_is_rewritten_without_the_record() {
        let t = c17();
        let data = json!([{"id": "c_1"}, {"id": "c_17", "x": 1}, {"id": "c_3"}, {"id": "c_17"}]);
        assert_eq!(
            t.judge("contact.created", None, &data),
            Verdict::Rewrite {
                data: json!([{"id": "c_1"}, {"id": "c_3"}]),
                removed: vec![1, 3]
            }
        );
        assert_eq!(renumber(0, &[1, 3]), Some(0));
        assert_eq!(renumber(1, &[1, 3]), None);
        assert_eq!(renumber(2, &[1, 3]), Some(1));
        assert_eq!(renumber(3, &[1, 3]), None);
        assert_eq!(renumber(4, &[1, 3]), Some(2));
    }

    #[test]
    fn a_batch_of_only_the_record_is_dropped() {
        let t = c17();
        let data = json!([{"id": "c_17"}, {"id": "c_17"}]);
        assert_eq!(t.judge("contact.created", None, &data), Verdict::Drop);
    }

    #[test]
    fn a_delete_of_several_ids_loses_the_record_id() {
        let t = Target::parse("contact", "17").unwrap();
        let data = json!({"ids": [17, "c_2"]});
        assert_eq!(
            t.judge("contact.deleted", None, &data),
            Verdict::Rewrite {
                data: json!({"ids": ["c_2"]}),
                removed: vec![0]
            }
        );
        assert_eq!(
            t.judge("contact.deleted", None, &json!({"ids": ["17"]})),
            Verdict::Drop
        );
    }

    #[test]
    fn a_request_names_a_known_subject_and_a_line_of_id() {
        assert_eq!(
            Target::parse("person", "c_1").unwrap_err().field,
            "entity_type"
        );
        assert_eq!(Target::parse("contact", "").unwrap_err().field, "entity_id");
        assert_eq!(
            Target::parse("contact", "a\nb").unwrap_err().field,
            "entity_id"
        );
        assert!(Target::parse("deal", "d_1").is_ok());
    }

    #[test]
    fn a_stored_answer_showing_the_record_is_found_at_any_depth() {
        let t = c17();
        assert!(shows(&t, &json!({"data": {"id": "c_17"}})));
        assert!(shows(&t, &json!([{"x": [{"id": "c_17"}]}])));
        assert!(!shows(&t, &json!({"id": "c_1", "contact_id": "c_17"})));
    }
}
