//! Columns of Jobs and CronJobs, as kubectl's printers show them.

use serde_json::{Value, json};

use super::apps::{template_cells_at, wide_columns};
use super::{age_cell, age_of, column, human_duration, s};
use crate::controllers::job::has_condition;

pub(super) fn columns(kind: &str, name: Value, age: Value) -> Option<Vec<Value>> {
    Some(match kind {
        "Job" => [
            name,
            column("Status", "string", 0, "Status of the job."),
            column("Completions", "string", 0, "The completion status of the job"),
            column("Duration", "string", 0, "Time required to complete the job."),
            age,
        ]
        .into_iter()
        .chain(wide_columns())
        .collect(),
        "CronJob" => [
            name,
            column("Schedule", "string", 0, "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            column("Timezone", "string", 0, "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
            column("Suspend", "boolean", 0, "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions. Defaults to false."),
            column("Active", "integer", 0, "A list of pointers to currently running jobs."),
            column("Last Schedule", "string", 0, "Information when was the last time the job was successfully scheduled."),
            age,
        ]
        .into_iter()
        .chain(wide_columns())
        .collect(),
        _ => return None,
    })
}

/// The STATUS column of a Job.
pub fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if job.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// COMPLETIONS: `succeeded/completions`, or for a work queue `n/1` and
/// `n/1 of parallelism`.
fn completions(job: &Value) -> String {
    let succeeded = int(job, "/status/succeeded").unwrap_or(0);
    match int(job, "/spec/completions") {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match int(job, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

fn duration(job: &Value) -> String {
    let time = |pointer: &str| s(job, pointer).parse::<jiff::Timestamp>().ok();
    match (time("/status/startTime"), time("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => {
            human_duration(jiff::Timestamp::now().as_second() - start.as_second())
        }
        (Some(start), Some(end)) => human_duration(end.as_second() - start.as_second()),
    }
}

pub(super) fn cells(kind: &str, object: &Value) -> Option<Vec<Value>> {
    let name = json!(s(object, "/metadata/name"));
    Some(match kind {
        "Job" => [
            name,
            json!(job_status(object)),
            json!(completions(object)),
            json!(duration(object)),
            age_cell(object),
        ]
        .into_iter()
        .chain(template_cells_at(object, "/spec"))
        .collect(),
        "CronJob" => [
            name,
            json!(s(object, "/spec/schedule")),
            json!(match s(object, "/spec/timeZone") {
                "" => "<none>",
                zone => zone,
            }),
            json!(
                match object.pointer("/spec/suspend").and_then(Value::as_bool) {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                }
            ),
            json!(
                object
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            json!(match s(object, "/status/lastScheduleTime") {
                "" => "<none>".to_string(),
                at => age_of(Some(at)),
            }),
            age_cell(object),
        ]
        .into_iter()
        .chain(template_cells_at(object, "/spec/jobTemplate/spec"))
        .collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_cells_follow_kubectl() {
        let job = json!({"metadata": {"name": "dice-job"},
            "spec": {"completions": 3, "parallelism": 1,
                "template": {"spec": {"containers": [{"name": "dice", "image": "toolbox"}]}}},
            "status": {"succeeded": 3, "startTime": "2026-01-01T00:00:00Z",
                "completionTime": "2026-01-01T00:00:42Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        let row = cells("Job", &job).unwrap();
        assert_eq!(row[1], "Complete");
        assert_eq!(row[2], "3/3");
        assert_eq!(row[3], "42s");
        let queue = json!({"spec": {"parallelism": 4}, "status": {"succeeded": 1}});
        assert_eq!(completions(&queue), "1/1 of 4");
        assert_eq!(job_status(&queue), "Running");
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(job_status(&failed), "Failed");
    }
}
