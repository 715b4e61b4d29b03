//! The OpenAPI schemas of the CRM records, one per kind. They document what
//! `hookline_core::record` validates (which stays the one rule: these types are never used to
//! parse a request) so that a generated client gets a type per kind instead of a free-form object.
#![allow(dead_code)] // documentation only: never constructed

use crate::service::EmittedEvent;
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// `{label, value}`: one email address, phone number, website or custom field of a contact.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelledValue {
    /// e.g. `work`, `home`.
    pub label: Option<String>,
    pub value: String,
}

/// An address or a place: `{formatted, raw}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Place {
    pub formatted: Option<String>,
    /// The place as the source system described it.
    #[schema(value_type = Option<Object>)]
    pub raw: Option<serde_json::Value>,
}

/// A tag on a contact.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactTag {
    pub name: String,
    /// e.g. `event`.
    #[serde(rename = "type")]
    pub tag_type: Option<String>,
}

/// A notetaker session linked to a contact.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotetakerSession {
    pub session_id: String,
    pub title: Option<String>,
    #[schema(format = "uri")]
    pub summary_url: Option<String>,
    #[schema(format = "uri")]
    pub audio_url: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A contact: ConnectMachine's contact schema field for field, plus `owner_id`. Unknown fields
/// are refused (422 `unknown_field`), and a contact needs at least one of `first_name`,
/// `last_name`, `company`, `primary_email`, `primary_phone`. `id` may be chosen on create;
/// `created_at` and `updated_at` are the server's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// 1-128 letters, digits, `-`, `_`, `.` or `:`; generated when absent.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
    pub id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub label: Option<String>,
    pub notes: Option<String>,
    #[schema(format = Email)]
    pub primary_email: Option<String>,
    pub primary_phone: Option<String>,
    pub emails: Option<Vec<LabelledValue>>,
    pub phones: Option<Vec<LabelledValue>>,
    pub websites: Option<Vec<LabelledValue>>,
    /// Each item has exactly one key, `<platform>_url`, e.g. `{"linkedin_url": "https://…"}`.
    pub socials: Option<Vec<BTreeMap<String, String>>>,
    pub custom: Option<Vec<LabelledValue>>,
    pub address: Option<Place>,
    pub where_we_met: Option<Place>,
    pub tags: Option<Vec<ContactTag>>,
    pub notetaker_sessions: Option<Vec<NotetakerSession>>,
    /// The user the contact is assigned to; a change emits `contact.assigned`.
    pub owner_id: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub created_at: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub updated_at: Option<String>,
}

/// An organization: `name` and any other fields.
#[derive(Deserialize, ToSchema)]
pub struct Organization {
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
    pub id: Option<String>,
    pub name: String,
    pub owner_id: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub created_at: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub updated_at: Option<String>,
}

/// A merge patch of an organization (RFC 7386: `null` removes a field).
#[derive(Deserialize, ToSchema)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub owner_id: Option<String>,
}

/// A deal: `name`, `stage` and any other fields. A change of `stage` emits `deal.stage.changed`,
/// of `owner_id` `deal.assigned`.
#[derive(Deserialize, ToSchema)]
pub struct Deal {
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
    pub id: Option<String>,
    pub name: String,
    pub stage: String,
    pub owner_id: Option<String>,
    pub amount: Option<f64>,
    pub contact_ids: Option<Vec<String>>,
    pub organization_id: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub created_at: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub updated_at: Option<String>,
}

/// A merge patch of a deal (RFC 7386: `null` removes a field).
#[derive(Deserialize, ToSchema)]
pub struct DealPatch {
    pub name: Option<String>,
    pub stage: Option<String>,
    pub owner_id: Option<String>,
    pub amount: Option<f64>,
    pub contact_ids: Option<Vec<String>>,
    pub organization_id: Option<String>,
}

/// A service: `name` and any other fields.
#[derive(Deserialize, ToSchema)]
pub struct Service {
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
    pub id: Option<String>,
    pub name: String,
    pub owner_id: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub created_at: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub updated_at: Option<String>,
}

/// A merge patch of a service (RFC 7386: `null` removes a field).
#[derive(Deserialize, ToSchema)]
pub struct ServicePatch {
    pub name: Option<String>,
    pub owner_id: Option<String>,
}

/// A task: `title` and any other fields.
#[derive(Deserialize, ToSchema)]
pub struct Task {
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
    pub id: Option<String>,
    pub title: String,
    pub owner_id: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub created_at: Option<String>,
    #[schema(format = DateTime, read_only)]
    pub updated_at: Option<String>,
}

/// A merge patch of a task (RFC 7386: `null` removes a field).
#[derive(Deserialize, ToSchema)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub owner_id: Option<String>,
}

/// The answers about one kind of record: the record with its version, a write's result, a page.
macro_rules! views {
    ($Record:ident, $View:ident, $Write:ident, $List:ident) => {
        /// A record with its version (also its `ETag`).
        #[derive(ToSchema)]
        pub struct $View {
            pub data: $Record,
            /// Send it back as `If-Match` to refuse a write over someone else's change.
            pub version: u64,
        }

        /// The answer of a write: the record after it (`null` after a delete), its version, and
        /// the events it emitted.
        #[derive(ToSchema)]
        pub struct $Write {
            pub data: Option<$Record>,
            pub version: Option<u64>,
            /// False when the write moved nothing: nothing was stored and no event emitted.
            pub changed: bool,
            pub events: Vec<EmittedEvent>,
        }

        /// A page of records, newest id first.
        #[derive(ToSchema)]
        pub struct $List {
            pub data: Vec<$View>,
            /// Pass as `cursor` to get the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }
    };
}

views!(Contact, ContactView, ContactWrite, ContactList);
views!(
    Organization,
    OrganizationView,
    OrganizationWrite,
    OrganizationList
);
views!(Deal, DealView, DealWrite, DealList);
views!(Service, ServiceView, ServiceWrite, ServiceList);
views!(Task, TaskView, TaskWrite, TaskList);
