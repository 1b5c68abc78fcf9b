//! batch/v1 Job and CronJob: Kubernetes' defaults (a Job's generated
//! selector and pod labels), and the validation a user meets first, with
//! its field paths and messages.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use serde_json::{Map, Value, json};

use super::pod::{self, set_default};
use super::{name_of, status, validate_metadata};
use crate::admission::{Errors, Invalid};
use crate::registry::resources::{
    ALL_VERBS, Hooks, Resource, Subresource, Typed, admit_nothing, allocate_nothing,
};
use crate::registry::selectors::LabelSelector;

/// The label a Job's generated selector matches on.
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The label every pod of a Job carries with the Job's name.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// Where an Indexed Job's pod finds its index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

const JOB_SUBRESOURCES: [Subresource; 1] = status("Job");
const CRONJOB_SUBRESOURCES: [Subresource; 1] = status("CronJob");

pub(super) fn jobs() -> Resource {
    Resource {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &JOB_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &["status.successful"],
        schema: "io.k8s.api.batch.v1.Job",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: job_defaults,
            initial_status: |_| {},
            validate: validate_job,
            typed: Typed::of::<Job>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

pub(super) fn cron_jobs() -> Resource {
    Resource {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        namespaced: true,
        short_names: &["cj"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &CRONJOB_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.batch.v1.CronJob",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: cron_job_defaults,
            initial_status: |_| {},
            validate: validate_cron_job,
            typed: Typed::of::<CronJob>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

fn job_defaults(job: &mut Value) {
    let uid = job
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = name_of(job).to_string();
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    job_spec_defaults(spec);
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual && spec.get("selector").is_none_or(Value::is_null) && !uid.is_empty() {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {CONTROLLER_UID: uid}}),
        );
        let labels = template_labels(spec);
        for (key, value) in [
            (CONTROLLER_UID, &uid),
            ("controller-uid", &uid),
            (JOB_NAME, &name),
            ("job-name", &name),
        ] {
            labels.insert(key.into(), json!(value));
        }
    }
    // A Job without labels of its own takes its pods' labels.
    let pod_labels = spec
        .get("template")
        .and_then(|t| t.pointer("/metadata/labels"))
        .cloned();
    if let Some(labels) = pod_labels
        && let Some(metadata) = job.get_mut("metadata").and_then(Value::as_object_mut)
        && metadata
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        metadata.insert("labels".into(), labels);
    }
}

/// The defaults of a Job's spec (also inside a CronJob's template).
fn job_spec_defaults(spec: &mut Map<String, Value>) {
    let unset = |spec: &Map<String, Value>, field: &str| spec.get(field).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if let Some(template) = spec.get_mut("template") {
        pod::defaults(template);
    }
}

/// The template's labels, made if missing.
fn template_labels(spec: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if !template.is_object() {
        *template = json!({});
    }
    let metadata = template
        .as_object_mut()
        .expect("made an object")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    let labels = metadata
        .as_object_mut()
        .expect("made an object")
        .entry("labels")
        .or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels.as_object_mut().expect("made an object")
}

fn cron_job_defaults(cron_job: &mut Value) {
    let Some(spec) = cron_job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(template) = spec
        .get_mut("jobTemplate")
        .and_then(|t| t.get_mut("spec"))
        .and_then(|s| s.get_mut("template"))
    {
        pod::defaults(template);
    }
}

fn at_least(errors: &mut Errors, spec: &Value, prefix: &str, field: &str, min: i64) {
    if let Some(value) = spec.get(field).and_then(Value::as_i64)
        && value < min
    {
        let bound = if min == 0 {
            "must be greater than or equal to 0".to_string()
        } else {
            format!("must be greater than or equal to {min}")
        };
        errors.push(
            format!("{prefix}{field}"),
            format!("Invalid value: {value}: {bound}"),
        );
    }
}

/// The checks of a Job spec at `prefix` (`spec.` or `spec.jobTemplate.spec.`).
fn validate_job_spec(errors: &mut Errors, spec: &Value, prefix: &str, check_selector: bool) {
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        at_least(errors, spec, prefix, field, 0);
    }
    at_least(errors, spec, prefix, "activeDeadlineSeconds", 1);
    // Accepted by Kubernetes, not carried out here: refused, not ignored.
    for field in [
        "podFailurePolicy",
        "successPolicy",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        if spec.get(field).is_some_and(|v| !v.is_null()) {
            errors.push(
                format!("{prefix}{field}"),
                "Forbidden: not supported by this server yet".into(),
            );
        }
    }
    if let Some(policy) = spec.get("podReplacementPolicy").and_then(Value::as_str)
        && policy != "TerminatingOrFailed"
    {
        errors.push(
            format!("{prefix}podReplacementPolicy"),
            format!("Unsupported value: {policy:?}: this server supports only \"TerminatingOrFailed\" so far"),
        );
    }
    let mode = spec
        .get("completionMode")
        .and_then(Value::as_str)
        .unwrap_or("NonIndexed");
    match mode {
        "NonIndexed" | "" => {}
        "Indexed" => {
            if spec.get("completions").is_none_or(Value::is_null) {
                errors.push(
                    format!("{prefix}completions"),
                    "Required value: when completion mode is Indexed".into(),
                );
            }
            if let Some(n) = spec.get("completions").and_then(Value::as_i64)
                && n > 100_000
            {
                errors.push(
                    format!("{prefix}completions"),
                    format!(
                        "Invalid value: {n}: must be less than or equal to 100000 when completion mode is Indexed"
                    ),
                );
            }
        }
        other => errors.unsupported(
            format!("{prefix}completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        ),
    }
    let containers = spec
        .pointer("/template/spec/containers")
        .and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        errors.required(format!("{prefix}template.spec.containers"));
    }
    let policy = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if !matches!(policy, "OnFailure" | "Never") {
        errors.unsupported(
            format!("{prefix}template.spec.restartPolicy"),
            policy,
            &["OnFailure", "Never"],
        );
    }
    if check_selector {
        match LabelSelector::from_object(spec.get("selector")) {
            Err(e) => errors.push(format!("{prefix}selector"), format!("Invalid value: {e}")),
            Ok(selector) if selector.is_empty() => errors.required(format!("{prefix}selector")),
            Ok(selector) => {
                let labels = spec
                    .pointer("/template/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                if !selector.matches(&json!({"metadata": {"labels": labels}})) {
                    errors.push(
                        format!("{prefix}template.metadata.labels"),
                        "Invalid value: `selector` does not match template `labels`".into(),
                    );
                }
            }
        }
    }
}

fn validate_job(job: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(job, old)?;
    let mut errors = Errors::default();
    let spec = job.get("spec").cloned().unwrap_or_else(|| json!({}));
    validate_job_spec(&mut errors, &spec, "spec.", true);
    if let Some(old) = old {
        let old_spec = old.get("spec").cloned().unwrap_or_else(|| json!({}));
        for field in ["selector", "completionMode"] {
            if spec.get(field) != old_spec.get(field) {
                errors.push(
                    format!("spec.{field}"),
                    "Invalid value: field is immutable".into(),
                );
            }
        }
        let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
        // An Indexed Job may change completions together with parallelism.
        let elastic = indexed && spec.get("completions") == spec.get("parallelism");
        if spec.get("completions") != old_spec.get("completions") && !elastic {
            errors.push(
                "spec.completions",
                "Invalid value: field is immutable".into(),
            );
        }
        // The template may change only while the Job is suspended.
        let suspended = old_spec.get("suspend").and_then(Value::as_bool) == Some(true);
        if spec.get("template") != old_spec.get("template") && !suspended {
            errors.push("spec.template", "Invalid value: field is immutable".into());
        }
    }
    errors.into_result("Job", name_of(job))
}

fn validate_cron_job(cron_job: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(cron_job, old)?;
    let mut errors = Errors::default();
    let name = name_of(cron_job);
    // Its Jobs are named `<name>-<minutes since the epoch>`.
    if name.len() > 52 {
        errors.push(
            "metadata.name",
            format!("Invalid value: {name:?}: must be no more than 52 characters"),
        );
    }
    let spec = cron_job.get("spec").cloned().unwrap_or_else(|| json!({}));
    match spec.get("schedule").and_then(Value::as_str) {
        None | Some("") => errors.required("spec.schedule"),
        Some(schedule) => {
            if let Err(e) = crate::cron::parse(schedule) {
                errors.push("spec.schedule", format!("Invalid value: {schedule:?}: {e}"));
            }
        }
    }
    if let Some(zone) = spec.get("timeZone").and_then(Value::as_str)
        && let Err(e) = crate::cron::zone(Some(zone))
    {
        errors.push("spec.timeZone", format!("Invalid value: {zone:?}: {e}"));
    }
    if let Some(policy) = spec.get("concurrencyPolicy").and_then(Value::as_str)
        && !matches!(policy, "Allow" | "Forbid" | "Replace")
    {
        errors.unsupported(
            "spec.concurrencyPolicy",
            policy,
            &["Allow", "Forbid", "Replace"],
        );
    }
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        at_least(&mut errors, &spec, "spec.", field, 0);
    }
    match spec.pointer("/jobTemplate/spec") {
        None => errors.required("spec.jobTemplate.spec"),
        Some(job_spec) => validate_job_spec(&mut errors, job_spec, "spec.jobTemplate.spec.", false),
    }
    errors.into_result("CronJob", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dice_job() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "dice-job", "uid": "u-1"},
            "spec": {"completions": 1, "parallelism": 1, "template": {
                "metadata": {"name": "dice-pod"},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "dice", "image": "toolbox"}]}}}})
    }

    #[test]
    fn a_job_gets_a_selector_on_its_uid_and_labelled_pods() {
        let mut job = dice_job();
        job_defaults(&mut job);
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {CONTROLLER_UID: "u-1"}})
        );
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["job-name"], "dice-job");
        assert_eq!(labels[JOB_NAME], "dice-job");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(job["metadata"]["labels"], *labels);
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(job["spec"]["completionMode"], "NonIndexed");
        assert_eq!(job["spec"]["suspend"], false);
        assert!(validate_job(&job, None).is_ok());
        // Defaulting again (an update) changes nothing.
        let mut again = job.clone();
        job_defaults(&mut again);
        assert_eq!(again, job);
    }

    #[test]
    fn job_validation_names_the_field() {
        let mut job = dice_job();
        job["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        job["spec"]["backoffLimit"] = json!(-1);
        job["spec"]["completionMode"] = json!("Indexed");
        job["spec"]["completions"] = Value::Null;
        job_defaults(&mut job);
        let message = validate_job(&job, None).unwrap_err().to_string();
        assert!(
            message.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""),
            "{message}"
        );
        assert!(
            message.contains(
                "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"
            ),
            "{message}"
        );
        assert!(
            message.contains("spec.completions: Required value: when completion mode is Indexed"),
            "{message}"
        );
        let mut job = dice_job();
        job["spec"]["podFailurePolicy"] = json!({"rules": []});
        job_defaults(&mut job);
        let message = validate_job(&job, None).unwrap_err().to_string();
        assert!(
            message.contains("spec.podFailurePolicy: Forbidden: not supported by this server yet"),
            "{message}"
        );
    }

    #[test]
    fn a_running_jobs_template_is_immutable() {
        let mut job = dice_job();
        job_defaults(&mut job);
        let mut changed = job.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        let message = validate_job(&changed, Some(&job)).unwrap_err().to_string();
        assert!(
            message.contains("spec.template: Invalid value: field is immutable"),
            "{message}"
        );
        job["spec"]["suspend"] = json!(true);
        changed["spec"]["suspend"] = json!(true);
        assert!(validate_job(&changed, Some(&job)).is_ok());
    }

    #[test]
    fn cron_job_schedule_and_zone_are_checked() {
        let mut cron_job = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "google-check-cronjob"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {
                "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "toolbox"}]}}}}}});
        cron_job_defaults(&mut cron_job);
        assert_eq!(cron_job["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cron_job["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cron_job["spec"]["failedJobsHistoryLimit"], 1);
        assert!(validate_cron_job(&cron_job, None).is_ok());
        cron_job["spec"]["schedule"] = json!("every minute");
        cron_job["spec"]["timeZone"] = json!("Mars/Olympus");
        cron_job["spec"]["concurrencyPolicy"] = json!("Sometimes");
        let message = validate_cron_job(&cron_job, None).unwrap_err().to_string();
        assert!(
            message.contains(
                "spec.schedule: Invalid value: \"every minute\": expected exactly 5 fields, found 2"
            ),
            "{message}"
        );
        assert!(
            message.contains(
                "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"
            ),
            "{message}"
        );
        assert!(
            message.contains("spec.concurrencyPolicy: Unsupported value"),
            "{message}"
        );
    }
}
