//! The query parameters of resource requests.

use crate::registry::{Error, FieldValidation, Result};

/// Query parameters, repeated keys kept.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query> {
        match raw {
            None => Ok(Query::default()),
            Some(raw) => serde_urlencoded::from_str(raw)
                .map(Query)
                .map_err(|e| Error::BadRequest(format!("malformed query string: {e}"))),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter, read as Go's `strconv.ParseBool` reads it
    /// (`true`, `True`, `1`, `t`, ...), as the API server does.
    pub fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key),
            Some("1" | "t" | "T" | "true" | "True" | "TRUE")
        )
    }

    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Error::BadRequest(format!("{key} must be a number, not {v:?}"))),
        }
    }

    /// `dryRun=All` (the only dry-run mode Kubernetes has).
    pub fn dry_run(&self) -> Result<bool> {
        let values = self.all("dryRun");
        for value in &values {
            if *value != "All" {
                return Err(Error::BadRequest(format!(
                    "Invalid dry run value {value:?}: the only supported value is \"All\""
                )));
            }
        }
        Ok(!values.is_empty())
    }

    pub fn field_validation(&self) -> Result<FieldValidation> {
        FieldValidation::parse(self.get("fieldValidation"))
    }
}
