//! Custom resources: what the API server does with the objects of a
//! CustomResourceDefinition.
//!
//! - [`structural`]: a version's schema; pruning, defaulting, validation.
//! - [`definition`]: the CustomResourceDefinition kind itself, its checks,
//!   and the resources a definition serves.
//! - [`controller`]: accepts a definition's names, serves it (Established),
//!   and deletes its objects before the definition goes.
//! - [`columns`]: `additionalPrinterColumns` as Table columns and cells.

pub mod columns;
pub mod controller;
pub mod definition;
pub mod structural;

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::Value;

use self::columns::PrinterColumn;
use self::structural::Structural;

/// What one served version of a CustomResourceDefinition says about its
/// objects, beyond names and scope.
#[derive(Debug)]
pub struct CustomKind {
    /// The version's schema, parsed.
    pub schema: Structural,
    /// The version's `openAPIV3Schema` as written, for OpenAPI.
    pub openapi: Value,
    /// Its `additionalPrinterColumns` (Name and Age when it has none).
    pub columns: Vec<PrinterColumn>,
    /// Its `scale` subresource, when it has one.
    pub scale: Option<ScalePaths>,
    /// The `deprecationWarning` of a deprecated version (or the API
    /// server's default one).
    pub deprecation: Option<String>,
    /// The definition's name (`widgets.example.com`).
    pub definition: String,
    /// The version its objects are stored at.
    pub storage_version: String,
    /// The schema server-side apply reads list types and map types from:
    /// the version's, with `metadata` as every object's.
    pub shape: &'static Value,
}

/// The `'static` copy of a schema, one per distinct schema for the life of
/// the process (as [`intern`]; field ownership walks `'static` schemas).
pub fn intern_schema(schema: Value) -> &'static Value {
    static SCHEMAS: Mutex<Option<std::collections::HashMap<String, &'static Value>>> =
        Mutex::new(None);
    let key = schema.to_string();
    let mut schemas = SCHEMAS.lock().unwrap_or_else(|e| e.into_inner());
    let schemas = schemas.get_or_insert_with(Default::default);
    schemas
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(schema)))
}

/// Where a custom resource keeps what its `scale` subresource shows, as
/// JSON pointers (`/spec/replicas`).
#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// The `'static` copy of `text`: one per distinct text for the life of
/// the process (resource descriptors name their kinds with `'static`
/// strings; definitions are few, and made again with the same names).
pub fn intern(text: &str) -> &'static str {
    static TEXTS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut texts = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    let texts = texts.get_or_insert_with(HashSet::new);
    if let Some(known) = texts.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    texts.insert(leaked);
    leaked
}

/// The `'static` copy of a list of names, as [`intern`].
pub fn intern_list(names: &[&str]) -> &'static [&'static str] {
    static LISTS: Mutex<Vec<&'static [&'static str]>> = Mutex::new(Vec::new());
    let mut lists = LISTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = lists.iter().find(|l| **l == names) {
        return known;
    }
    let owned: Vec<&'static str> = names.iter().map(|n| intern(n)).collect();
    let leaked: &'static [&'static str] = Box::leak(owned.into_boxed_slice());
    lists.push(leaked);
    leaked
}
