//! Field ownership: `metadata.managedFields`, kept as the API server keeps
//! it with structured merge.
//!
//! Every write is made by a manager (its `fieldManager`). An update (any
//! write but an apply) takes over the fields it changes from whoever held
//! them. An apply holds exactly the fields of its configuration: it fails
//! with a conflict when it would change a field another manager holds
//! (unless forced, which takes the field over), and the fields it applied
//! before and no longer applies are removed from the object, unless
//! another manager holds them.
//!
//! A field set is a tree of path elements, as `fieldsV1` writes it:
//! `f:name` a field, `k:{"name":"c"}` a list item by its keys, `v:"x"` a
//! value of a set, `i:3` an item by its index; `.` marks a path that is a
//! member itself and has members below it. Which lists are keyed comes
//! from the kind's OpenAPI schema ([`crate::schema`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::metadata::now;
use crate::schema;

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Reads a `fieldsV1` value.
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        for (key, child) in value.as_object().into_iter().flatten() {
            if key == "." {
                set.member = true;
                continue;
            }
            let mut inner = FieldSet::from_fields_v1(child);
            if child.as_object().is_none_or(Map::is_empty) {
                inner.member = true;
            }
            set.children.insert(key.clone(), inner);
        }
        set
    }

    /// Writes the set as `fieldsV1`.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        if self.member && !self.children.is_empty() {
            out.insert(".".into(), json!({}));
        }
        for (key, child) in &self.children {
            out.insert(key.clone(), child.to_fields_v1());
        }
        Value::Object(out)
    }

    /// Whether no path is a member.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    fn leaf() -> FieldSet {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    fn child(&mut self, key: String) -> &mut FieldSet {
        self.children.entry(key).or_default()
    }

    /// Adds `child` under `key` unless it is empty.
    fn attach(&mut self, key: &str, child: FieldSet) {
        if !child.is_empty() {
            self.children.insert(key.into(), child);
        }
    }

    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (key, child) in &other.children {
            self.child(key.clone()).union(child);
        }
    }

    /// Takes the members of `other` out of `self`, walking only `other`.
    fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (key, theirs) in &other.children {
            if let Some(mine) = self.children.get_mut(key) {
                mine.subtract(theirs);
                if mine.is_empty() {
                    self.children.remove(key);
                }
            }
        }
    }

    /// The members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            let rest = match other.children.get(key) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            out.attach(key, rest);
        }
        out
    }

    /// The members of both.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            if let Some(theirs) = other.children.get(key) {
                out.attach(key, child.intersection(theirs));
            }
        }
        out
    }

    /// Whether `path` (of `fieldsV1` keys) is a member.
    pub fn has(&self, path: &[&str]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((first, rest)) => self.children.get(*first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Every member as the API server prints a path (`.spec.replicas`,
    /// `.spec.containers[name="web"].image`): each level's members before
    /// what lies below them.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_paths(String::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: String, out: &mut Vec<String>) {
        for (key, child) in &self.children {
            if child.member {
                out.push(format!("{prefix}{}", display(key)));
            }
        }
        for (key, child) in &self.children {
            child.collect_paths(format!("{prefix}{}", display(key)), out);
        }
    }

    /// Drops the paths no manager may own: those the server sets (`name`,
    /// `uid`, `resourceVersion`…), and the status or the rest of the
    /// object as `scope` says.
    fn restrict(&mut self, scope: Scope) {
        self.children.remove("f:apiVersion");
        self.children.remove("f:kind");
        if let Some(meta) = self.children.get_mut("f:metadata") {
            for owned in SERVER_METADATA {
                meta.children.remove(&format!("f:{owned}"));
            }
            meta.member = false;
        }
        match scope {
            Scope::Object => {}
            Scope::Spec => {
                self.children.remove("f:status");
            }
            Scope::Status => self.children.retain(|k, _| k == "f:status"),
        }
        self.member = false;
        self.children.retain(|_, c| !c.is_empty());
    }
}

/// Metadata the server sets; no manager owns it.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// What part of an object a write may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// All of it (kinds without a status subresource).
    Object,
    /// All but the status (the object of a kind with a status subresource).
    Spec,
    /// The status only (the status subresource).
    Status,
}

/// A `fieldsV1` key as a path element is printed.
fn display(key: &str) -> String {
    let (kind, rest) = key.split_at(key.find(':').map_or(0, |i| i + 1));
    match kind {
        "f:" => format!(".{rest}"),
        "k:" => match serde_json::from_str::<Map<String, Value>>(rest) {
            Ok(keys) => format!(
                "[{}]",
                keys.iter()
                    .map(|(k, v)| format!("{k}={}", scalar(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Err(_) => format!("[{rest}]"),
        },
        "v:" => match serde_json::from_str::<Value>(rest) {
            Ok(value) => format!("[={}]", scalar(&value)),
            Err(_) => format!("[={rest}]"),
        },
        "i:" => format!("[{rest}]"),
        _ => key.to_string(),
    }
}

/// A value as Go's `%v` prints it, strings quoted.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

/// Where a value sits in its kind's schema: which lists are keyed and by
/// what, which maps are atomic.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The schema where the value is declared (a property, with its
    /// list extensions).
    declared: Option<&'static Value>,
    /// Its type, `$ref`s followed.
    resolved: Option<&'static Value>,
}

/// How a list's items are told apart.
enum ListType {
    /// The whole list is one value.
    Atomic,
    /// Scalars, each a member (`v:`).
    Set,
    /// Objects by the values of these keys (`k:`), a key's default when
    /// an item leaves it out.
    Map(Vec<(&'static str, Option<&'static str>)>),
}

impl Shape {
    fn at(declared: Option<&'static Value>) -> Shape {
        Shape {
            declared,
            resolved: declared.map(schema::resolve),
        }
    }

    /// The shape of the kind whose schema is named `name`.
    pub fn of(name: &str) -> Shape {
        Shape::at(schema::named(name))
    }

    /// The shape of a resource's objects: a custom resource's from its
    /// version's schema.
    pub fn of_resource(resource: &super::Resource) -> Shape {
        match &resource.custom {
            Some(custom) => Shape::at(Some(custom.shape)),
            None => Shape::of(resource.schema),
        }
    }

    fn field(self, name: &str) -> Shape {
        let resolved = self.resolved;
        Shape::at(resolved.and_then(|s| {
            s.get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
        }))
    }

    fn items(self) -> Shape {
        Shape::at(self.resolved.and_then(|s| s.get("items")))
    }

    /// Whether `name` is a field of a struct (not an entry of a map).
    fn is_field(self, name: &str) -> bool {
        self.resolved
            .and_then(|s| s.get("properties"))
            .is_some_and(|p| p.get(name).is_some())
    }

    fn atomic_map(self) -> bool {
        [self.declared, self.resolved]
            .into_iter()
            .flatten()
            .any(|s| s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"))
    }

    fn list(self) -> ListType {
        let Some(schema) = self.declared else {
            return ListType::Atomic;
        };
        let text = |key: &str| -> Option<&'static str> { schema.get(key).and_then(Value::as_str) };
        match text("x-kubernetes-list-type") {
            Some("set") => return ListType::Set,
            Some("map") => {
                let keys = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|k| (k, None))
                    .collect();
                return ListType::Map(keys);
            }
            Some(_) => return ListType::Atomic,
            None => {}
        }
        let merges = text("x-kubernetes-patch-strategy")
            .is_some_and(|s| s.split(',').any(|part| part == "merge"));
        match (merges, text("x-kubernetes-patch-merge-key")) {
            (false, _) => ListType::Atomic,
            (true, None) => ListType::Set,
            // Ports are told apart by port and protocol, TCP when left out.
            (true, Some(key @ ("containerPort" | "port"))) => {
                ListType::Map(vec![(key, None), ("protocol", Some("TCP"))])
            }
            (true, Some(key)) => ListType::Map(vec![(key, None)]),
        }
    }

    /// The `fieldsV1` key of each item of a keyed list (`None`: the list
    /// is atomic, or an item cannot be keyed).
    fn keyed(self, items: &[Value]) -> Option<Vec<(String, &Value)>> {
        match self.list() {
            ListType::Atomic => None,
            ListType::Set => items
                .iter()
                .map(|item| match item {
                    Value::Object(_) | Value::Array(_) => None,
                    scalar => Some((format!("v:{scalar}"), item)),
                })
                .collect(),
            ListType::Map(keys) => items
                .iter()
                .map(|item| {
                    let object = item.as_object()?;
                    let mut keyed = Map::new();
                    for (key, default) in &keys {
                        let value = match (object.get(*key), default) {
                            (Some(v), _) if !v.is_null() => v.clone(),
                            (_, Some(default)) => json!(default),
                            _ => return None,
                        };
                        keyed.insert((*key).into(), value);
                    }
                    Some((format!("k:{}", Value::Object(keyed)), item))
                })
                .collect(),
        }
    }
}

/// The fields of an applied configuration: every value it sets.
pub fn fields_of(config: &Value, shape: Shape, scope: Scope) -> FieldSet {
    let mut set = FieldSet::default();
    collect(config, shape, &mut set);
    set.restrict(scope);
    set
}

fn collect(value: &Value, shape: Shape, node: &mut FieldSet) {
    match value {
        Value::Object(map) if !shape.atomic_map() => {
            for (key, child) in map {
                let mut inner = FieldSet::default();
                collect(child, shape.field(key), &mut inner);
                if child.is_null()
                    || child.as_object().is_some_and(Map::is_empty)
                    || !shape.is_field(key)
                {
                    inner.member = true;
                }
                node.attach(&format!("f:{key}"), inner);
            }
        }
        Value::Array(items) => match shape.keyed(items) {
            Some(keyed) => {
                let item_shape = shape.items();
                for (key, item) in keyed {
                    let mut inner = FieldSet::leaf();
                    collect(item, item_shape, &mut inner);
                    node.children.insert(key, inner);
                }
            }
            None => node.member = true,
        },
        _ => node.member = true,
    }
}

/// What an update changed: fields added, modified and removed.
#[derive(Debug, Default, PartialEq)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    fn attach(&mut self, key: &str, child: Comparison) {
        if child.is_empty() {
            return;
        }
        self.added.attach(key, child.added);
        self.modified.attach(key, child.modified);
        self.removed.attach(key, child.removed);
    }

    fn changed(&self) -> FieldSet {
        let mut changed = self.added.clone();
        changed.union(&self.modified);
        changed
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// Fields always present in an object of a built-in kind (Go structs, not
/// pointers): creating or dropping their contents does not add or remove
/// the field itself.
const STRUCT_FIELDS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "jobTemplate",
    "strategy",
    "updateStrategy",
];

/// Compares two versions of an object.
/// Compares two versions of an object, within `scope`; what the server
/// sets (and `managedFields` themselves) is never looked at.
pub fn compare(old: &Value, new: &Value, shape: Shape, scope: Scope) -> Comparison {
    let (a, b) = (old.as_object(), new.as_object());
    let mut comparison = compare_fields(a, b, shape, |key| {
        matches!(key, "apiVersion" | "kind" | "metadata")
            || match scope {
                Scope::Object => false,
                Scope::Spec => key == "status",
                Scope::Status => key != "status",
            }
    });
    if scope != Scope::Status {
        let inner = compare_fields(
            metadata_of(old),
            metadata_of(new),
            shape.field("metadata"),
            |key| SERVER_METADATA.contains(&key),
        );
        comparison.attach("f:metadata", inner);
    }
    comparison
}

fn metadata_of(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

/// Compares the fields of two maps (either may be absent) but those
/// `skip` names.
fn compare_fields(
    a: Option<&Map<String, Value>>,
    b: Option<&Map<String, Value>>,
    shape: Shape,
    skip: impl Fn(&str) -> bool,
) -> Comparison {
    let mut out = Comparison::default();
    let mut keys: Vec<&String> = a.into_iter().flat_map(|m| m.keys()).collect();
    keys.extend(b.into_iter().flat_map(|m| m.keys()));
    keys.sort();
    keys.dedup();
    for key in keys {
        if skip(key) {
            continue;
        }
        let always = STRUCT_FIELDS.contains(&key.as_str()) && shape.is_field(key);
        let child = compare_at(
            a.and_then(|m| m.get(key)),
            b.and_then(|m| m.get(key)),
            shape.field(key),
            always,
        );
        if !child.is_empty() {
            out.attach(&format!("f:{key}"), child);
        }
    }
    out
}

fn compare_at(old: Option<&Value>, new: Option<&Value>, shape: Shape, always: bool) -> Comparison {
    let old = old.filter(|v| !v.is_null());
    let new = new.filter(|v| !v.is_null());
    let mut out = Comparison::default();
    let empty = |v: Option<&Value>| {
        v.is_none_or(|v| {
            v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
        })
    };
    let objects = |v: Option<&Value>| v.is_none_or(Value::is_object);
    let lists = |v: Option<&Value>| v.is_none_or(Value::is_array);
    let inner = !(empty(old) && empty(new));
    let descended = if inner && objects(old) && objects(new) && !shape.atomic_map() {
        out = compare_fields(
            old.and_then(Value::as_object),
            new.and_then(Value::as_object),
            shape,
            |_| false,
        );
        true
    } else if inner && lists(old) && lists(new) {
        let none: &[Value] = &[];
        let a = old.and_then(Value::as_array).map_or(none, Vec::as_slice);
        let b = new.and_then(Value::as_array).map_or(none, Vec::as_slice);
        match (shape.keyed(a), shape.keyed(b)) {
            (Some(a), Some(b)) => {
                let a: BTreeMap<String, &Value> = a.into_iter().collect();
                let b: BTreeMap<String, &Value> = b.into_iter().collect();
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                let items = shape.items();
                for key in keys {
                    let child = compare_at(a.get(key).copied(), b.get(key).copied(), items, false);
                    out.attach(key, child);
                }
                true
            }
            _ => false,
        }
    } else {
        false
    };
    if descended {
        if !always {
            out.added.member = old.is_none();
            out.removed.member = new.is_none();
        }
    } else {
        match (old, new) {
            (None, None) => {}
            (None, Some(_)) => out.added.member = true,
            (Some(_), None) => out.removed.member = true,
            (Some(a), Some(b)) => out.modified.member = a != b,
        }
    }
    out
}

/// Removes the members of `set` from `value`; a map or list emptied by it
/// goes too. Returns whether `value` was emptied.
fn remove(value: &mut Value, set: &FieldSet, shape: Shape) -> bool {
    match value {
        Value::Object(map) if !map.is_empty() && !shape.atomic_map() => {
            map.retain(|key, child| match set.children.get(&format!("f:{key}")) {
                Some(inner) if inner.member => false,
                Some(inner) => !remove(child, inner, shape.field(key)),
                None => true,
            });
            map.is_empty()
        }
        Value::Array(items) if !items.is_empty() => {
            let Some(keys) = shape.keyed(items) else {
                return false;
            };
            let keys: Vec<String> = keys.into_iter().map(|(k, _)| k).collect();
            let item_shape = shape.items();
            let mut kept = Vec::with_capacity(items.len());
            for (key, mut item) in keys.into_iter().zip(items.drain(..)) {
                match set.children.get(&key) {
                    Some(inner) if inner.member => {}
                    Some(inner) => {
                        if !remove(&mut item, inner, item_shape) {
                            kept.push(item);
                        }
                    }
                    None => kept.push(item),
                }
            }
            *items = kept;
            items.is_empty()
        }
        _ => false,
    }
}

/// The paths of `last` that nothing in `held` keeps: a field goes when no
/// manager holds it or anything below it, a list item when no manager
/// holds the item itself.
fn unheld(last: &FieldSet, held: Option<&FieldSet>, top: bool) -> FieldSet {
    let mut out = FieldSet::default();
    for (key, child) in &last.children {
        let theirs = held.and_then(|h| h.children.get(key));
        let field = key.starts_with("f:");
        let kept = theirs.is_some_and(|t| if field { !t.is_empty() } else { t.member });
        // The object's metadata always stays, whatever goes from it.
        let whole = if field {
            !(top && key == "f:metadata")
        } else {
            child.member
        };
        if whole && !kept {
            out.children.insert(key.clone(), FieldSet::leaf());
        } else {
            out.attach(key, unheld(child, theirs, false));
        }
    }
    out
}

/// How a manager wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who writes: a manager's name, how, at which version, through which
/// subresource.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub operation: Operation,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, writer: &Writer) -> bool {
        self.manager == writer.manager
            && self.operation == writer.operation.as_str()
            && self.subresource.as_deref() == writer.subresource
            // Appliers are one manager at any version; updaters one per
            // version.
            && (writer.operation == Operation::Apply || self.api_version == writer.api_version)
    }

    /// The manager as a conflict names it.
    fn describe(&self) -> String {
        let mut text = scalar(&json!(self.manager));
        if let Some(sub) = &self.subresource {
            text.push_str(&format!(" with subresource {}", scalar(&json!(sub))));
        }
        if self.operation == "Update" {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }

    fn sort_key(&self) -> (&str, &str, &str, &str) {
        (
            &self.manager,
            &self.operation,
            &self.api_version,
            self.subresource.as_deref().unwrap_or(""),
        )
    }
}

/// The most update managers kept apart; older ones are merged into one
/// `ancient-changes` entry, as the API server does.
const MAX_UPDATE_MANAGERS: usize = 10;

/// An object's managers and what each holds.
#[derive(Debug, Clone, Default)]
pub struct Managers(Vec<Entry>);

/// An apply that would change fields other managers hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflicts {
    /// `(manager as named, path)` for every conflicting field.
    pub fields: Vec<(String, String)>,
    pub message: String,
}

impl Managers {
    /// The managers recorded on `object`.
    pub fn of(object: &Value) -> Managers {
        Managers::decode(object.pointer("/metadata/managedFields"))
    }

    fn decode(entries: Option<&Value>) -> Managers {
        let entries = entries.and_then(Value::as_array).into_iter().flatten();
        Managers(
            entries
                .filter_map(|e| {
                    let text = |key: &str| e.get(key).and_then(Value::as_str).map(str::to_string);
                    let fields = FieldSet::from_fields_v1(e.get("fieldsV1")?);
                    Some(Entry {
                        manager: text("manager").unwrap_or_default(),
                        operation: text("operation")?,
                        api_version: text("apiVersion").unwrap_or_default(),
                        subresource: text("subresource").filter(|s| !s.is_empty()),
                        time: text("time"),
                        fields,
                    })
                })
                .filter(|e| !e.fields.is_empty())
                .collect(),
        )
    }

    /// The managers of an object created by an apply: the applier owns
    /// its configuration.
    pub fn applied(config: &Value, shape: Shape, scope: Scope, writer: &Writer) -> Managers {
        Managers(vec![Entry {
            manager: writer.manager.into(),
            operation: Operation::Apply.as_str().into(),
            api_version: writer.api_version.into(),
            subresource: writer.subresource.map(str::to_string),
            time: Some(now()),
            fields: fields_of(config, shape, scope),
        }])
    }

    /// The managers an update starts from: those the new object carries
    /// if it sets them (an empty list, or one empty entry, clears them),
    /// else the live object's. A write to a subresource cannot set them.
    pub fn for_update(live: &Value, new: &Value, subresource: Option<&str>) -> Managers {
        let given = new.pointer("/metadata/managedFields");
        if subresource.is_some() {
            return Managers::of(live);
        }
        match given.and_then(Value::as_array) {
            Some(entries)
                if entries.is_empty()
                    || (entries.len() == 1
                        && entries[0].as_object().is_some_and(Map::is_empty)) =>
            {
                Managers::default()
            }
            Some(_) => {
                let managers = Managers::decode(given);
                if managers.0.is_empty() {
                    Managers::of(live)
                } else {
                    managers
                }
            }
            None => Managers::of(live),
        }
    }

    /// The `managedFields` to store: appliers first, then by time.
    pub fn encode(&self) -> Option<Value> {
        let mut entries: Vec<&Entry> = self.0.iter().collect();
        entries.sort_by(|a, b| {
            (
                a.operation.as_str(),
                a.time.as_deref().unwrap_or(""),
                a.sort_key(),
            )
                .cmp(&(
                    b.operation.as_str(),
                    b.time.as_deref().unwrap_or(""),
                    b.sort_key(),
                ))
        });
        let entries: Vec<Value> = entries
            .into_iter()
            .map(|e| {
                let mut entry = json!({
                    "manager": e.manager,
                    "operation": e.operation,
                    "apiVersion": e.api_version,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": e.fields.to_fields_v1(),
                });
                if let Some(time) = &e.time {
                    entry["time"] = json!(time);
                }
                if let Some(sub) = &e.subresource {
                    entry["subresource"] = json!(sub);
                }
                entry
            })
            .collect();
        (!entries.is_empty()).then_some(Value::Array(entries))
    }

    /// Stores the managers on `object`.
    pub fn write_to(&self, object: &mut Value) {
        let metadata = super::metadata::metadata_mut(object);
        match self.encode() {
            Some(entries) => metadata.insert("managedFields".into(), entries),
            None => metadata.remove("managedFields"),
        };
    }

    /// What an update from `live` to `new` by `writer` does to ownership:
    /// the writer takes every field it added or changed; no one holds a
    /// field it removed.
    pub fn update(
        &mut self,
        live: &Value,
        new: &Value,
        shape: Shape,
        scope: Scope,
        writer: &Writer,
    ) {
        let comparison = compare(live, new, shape, scope);
        let changed = comparison.changed();
        self.release(&changed, &comparison.removed);
        if !changed.is_empty() {
            match self.0.iter_mut().find(|e| e.is(writer)) {
                Some(entry) => {
                    entry.fields.union(&changed);
                    entry.time = Some(now());
                }
                None => self.0.push(Entry {
                    manager: writer.manager.into(),
                    operation: writer.operation.as_str().into(),
                    api_version: writer.api_version.into(),
                    subresource: writer.subresource.map(str::to_string),
                    time: Some(now()),
                    fields: changed,
                }),
            }
        }
        self.cap();
    }

    /// Server-side apply of `config` (already merged into `merged`) over
    /// `live` by `writer`: the fields it applied before and no longer
    /// does are removed unless another manager holds them; a change to a
    /// field another manager holds is a conflict unless `force`d (or
    /// `allowed`, asked only when there are conflicts), which takes the
    /// field over. Returns the object to store, before defaults.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        live: &Value,
        mut merged: Value,
        config: &Value,
        shape: Shape,
        scope: Scope,
        writer: &Writer,
        force: bool,
        allowed: impl FnOnce() -> Option<FieldSet>,
    ) -> Result<Value, Conflicts> {
        let set = fields_of(config, shape, scope);
        let previous = self
            .0
            .iter()
            .position(|e| e.is(writer))
            .map(|i| self.0.remove(i));
        if let Some(last) = &previous {
            let mut held = set.clone();
            for entry in &self.0 {
                held.union(&entry.fields);
            }
            remove(&mut merged, &unheld(&last.fields, Some(&held), true), shape);
        }
        let comparison = compare(live, &merged, shape, scope);
        let changed = comparison.changed();
        let mut conflicts: Vec<(&Entry, FieldSet)> = self
            .0
            .iter()
            .map(|e| (e, e.fields.intersection(&changed)))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        if !force && !conflicts.is_empty() {
            if let Some(allowed) = allowed() {
                for (_, fields) in &mut conflicts {
                    *fields = fields.difference(&allowed);
                }
                conflicts.retain(|(_, c)| !c.is_empty());
            }
            if !conflicts.is_empty() {
                return Err(conflict(conflicts));
            }
        }
        self.release(&changed, &comparison.removed);
        let time = match (&previous, comparison.is_empty()) {
            (Some(last), true) => last.time.clone(),
            _ => Some(now()),
        };
        if !set.is_empty() {
            self.0.push(Entry {
                manager: writer.manager.into(),
                operation: Operation::Apply.as_str().into(),
                api_version: writer.api_version.into(),
                subresource: writer.subresource.map(str::to_string),
                time,
                fields: set,
            });
        }
        Ok(merged)
    }

    /// Every manager lets go of `changed` (another writer's now) and of
    /// `removed` (gone).
    fn release(&mut self, changed: &FieldSet, removed: &FieldSet) {
        for entry in &mut self.0 {
            entry.fields.subtract(changed);
            entry.fields.subtract(removed);
        }
        self.0.retain(|e| !e.fields.is_empty());
    }

    /// Merges the oldest update managers into `ancient-changes` while
    /// there are more than [`MAX_UPDATE_MANAGERS`].
    fn cap(&mut self) {
        let updates = |m: &Managers| m.0.iter().filter(|e| e.operation == "Update").count();
        while updates(self) > MAX_UPDATE_MANAGERS {
            let oldest = self
                .0
                .iter()
                .enumerate()
                .filter(|(_, e)| e.operation == "Update" && e.manager != "ancient-changes")
                .min_by(|(_, a), (_, b)| a.time.cmp(&b.time))
                .map(|(i, _)| i);
            let Some(oldest) = oldest else { break };
            let entry = self.0.remove(oldest);
            match self
                .0
                .iter_mut()
                .find(|e| e.manager == "ancient-changes" && e.operation == "Update")
            {
                Some(ancient) => ancient.fields.union(&entry.fields),
                None => self.0.push(Entry {
                    manager: "ancient-changes".into(),
                    subresource: None,
                    ..entry
                }),
            }
        }
    }
}

fn conflict(conflicts: Vec<(&Entry, FieldSet)>) -> Conflicts {
    let mut conflicts = conflicts;
    conflicts.sort_by(|a, b| a.0.sort_key().cmp(&b.0.sort_key()));
    let fields: Vec<(String, String)> = conflicts
        .iter()
        .flat_map(|(entry, set)| set.paths().into_iter().map(|path| (entry.describe(), path)))
        .collect();
    let message = match fields.as_slice() {
        [(manager, path)] => {
            format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
        }
        _ => {
            let mut lines = Vec::new();
            for (entry, set) in &conflicts {
                lines.push(format!("conflicts with {}:", entry.describe()));
                lines.extend(set.paths().into_iter().map(|p| format!("- {p}")));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                fields.len(),
                lines.join("\n")
            )
        }
    };
    Conflicts { fields, message }
}

/// The annotation in which client-side `kubectl apply` keeps what it
/// applied.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The fields a client-side `kubectl apply` set that still hold what it
/// set: server-side apply by `kubectl` may take them over without a
/// conflict, so moving from client-side to server-side apply needs no
/// `--force-conflicts`.
pub fn applied_by_kubectl(live: &Value, shape: Shape) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion") != live.get("apiVersion") {
        return None;
    }
    let set = fields_of(&last, shape, Scope::Object);
    let differs = compare(&last, live, shape, Scope::Object);
    Some(
        set.difference(&differs.modified)
            .difference(&differs.added)
            .difference(&differs.removed),
    )
}

/// After a server-side apply by `kubectl` of an object client-side apply
/// made, its last-applied annotation is kept in step with the
/// configuration.
pub fn keep_last_applied(object: &mut Value, config: &Value) {
    let present = object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .is_some();
    if !present {
        return;
    }
    let mut last = config.clone();
    if let Some(annotations) = last
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            last["metadata"]
                .as_object_mut()
                .map(|m| m.remove("annotations"));
        }
    }
    object["metadata"]["annotations"][LAST_APPLIED] = json!(last.to_string());
}

#[cfg(test)]
mod tests;
