//! Validation of Pods, after Kubernetes' `ValidatePod`: names, containers,
//! images, volumes and their mounts, ports, env, resources, restart policy.

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume};
use std::collections::{BTreeMap, HashSet};

use super::{Errors, Invalid, check_dns_label, check_dns_subdomain};
use crate::quantity::Quantity;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// Checks a Pod; every problem is reported, not only the first.
pub fn validate(pod: &Pod) -> Result<(), Invalid> {
    let mut errors = Errors::default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    match pod.metadata.name.as_deref() {
        None | Some("") if pod.metadata.generate_name.is_none() => errors.push(
            "metadata.name",
            "Required value: name or generateName is required".into(),
        ),
        Some(n) if !n.is_empty() => check_dns_subdomain(&mut errors, "metadata.name", n),
        _ => {}
    }
    if let Some(ns) = &pod.metadata.namespace {
        check_dns_label(&mut errors, "metadata.namespace", ns);
    }
    let Some(spec) = &pod.spec else {
        errors.required("spec");
        return errors.into_result("Pod", &name);
    };

    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let volume_names = validate_volumes(&mut errors, volumes);

    if spec.containers.is_empty() {
        errors.required("spec.containers");
    }
    let mut container_names = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for (group, list) in [
        ("spec.initContainers", init),
        ("spec.containers", spec.containers.as_slice()),
    ] {
        for (i, c) in list.iter().enumerate() {
            let path = format!("{group}[{i}]");
            validate_container(&mut errors, &path, c, &volume_names);
            if !c.name.is_empty() && !container_names.insert(c.name.clone()) {
                errors.duplicate(format!("{path}.name"), &c.name);
            }
        }
    }
    if let Some(policy) = &spec.restart_policy
        && !RESTART_POLICIES.contains(&policy.as_str())
    {
        errors.unsupported("spec.restartPolicy", policy, RESTART_POLICIES);
    }
    if let Some(grace) = spec.termination_grace_period_seconds
        && grace < 0
    {
        errors.invalid(
            "spec.terminationGracePeriodSeconds",
            &grace.to_string(),
            "must be greater than or equal to 0",
        );
    }
    errors.into_result("Pod", &name)
}

fn validate_volumes(errors: &mut Errors, volumes: &[Volume]) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            errors.required(format!("{path}.name"));
        } else {
            check_dns_label(errors, &format!("{path}.name"), &v.name);
            if !names.insert(v.name.clone()) {
                errors.duplicate(format!("{path}.name"), &v.name);
            }
        }
        // Exactly one source: count the fields besides the name.
        let sources = serde_json::to_value(v)
            .ok()
            .and_then(|j| {
                j.as_object()
                    .map(|o| o.keys().filter(|k| *k != "name").count())
            })
            .unwrap_or(0);
        match sources {
            0 => errors.push(
                path.clone(),
                "Required value: must specify a volume type".into(),
            ),
            1 => {}
            _ => errors.push(
                path.clone(),
                "Forbidden: may not specify more than 1 volume type".into(),
            ),
        }
        if let Some(host) = &v.host_path {
            if !host.path.starts_with('/') {
                errors.invalid(
                    format!("{path}.hostPath.path"),
                    &host.path,
                    "must be an absolute path",
                );
            }
            if host.path.split('/').any(|p| p == "..") {
                errors.invalid(
                    format!("{path}.hostPath.path"),
                    &host.path,
                    "must not contain '..'",
                );
            }
        }
        validate_written_volume(errors, &path, v);
        if let Some(empty) = &v.empty_dir
            && let Some(limit) = &empty.size_limit
            && let Err(e) = Quantity::parse(&limit.0)
        {
            errors.invalid(
                format!("{path}.emptyDir.sizeLimit"),
                &limit.0,
                &e.to_string(),
            );
        }
    }
    names
}

/// A path inside a volume the kubelet writes: relative, no `..` element,
/// not starting with `..` (the writer's own names).
fn validate_local_path(errors: &mut Errors, field: String, path: &str) {
    if path.is_empty() {
        errors.required(field);
    } else if path.starts_with('/') {
        errors.invalid(field, path, "must be a relative path");
    } else if path.split('/').any(|p| p == "..") {
        errors.invalid(field, path, "must not contain '..'");
    } else if path.starts_with("..") {
        errors.invalid(field, path, "must not start with '..'");
    }
}

fn validate_mode(errors: &mut Errors, field: String, mode: Option<i32>) {
    if let Some(mode) = mode
        && !(0..=0o777).contains(&mode)
    {
        errors.invalid(
            field,
            &mode.to_string(),
            "must be a number between 0 and 0777 (octal), both inclusive",
        );
    }
}

fn validate_items(errors: &mut Errors, field: &str, items: Option<&[KeyToPath]>) {
    for (k, item) in items.unwrap_or_default().iter().enumerate() {
        let at = format!("{field}.items[{k}]");
        if item.key.is_empty() {
            errors.required(format!("{at}.key"));
        }
        validate_local_path(errors, format!("{at}.path"), &item.path);
        validate_mode(errors, format!("{at}.mode"), item.mode);
    }
}

fn validate_downward_items(errors: &mut Errors, field: &str, items: &[DownwardAPIVolumeFile]) {
    for (k, item) in items.iter().enumerate() {
        let at = format!("{field}.items[{k}]");
        validate_local_path(errors, format!("{at}.path"), &item.path);
        validate_mode(errors, format!("{at}.mode"), item.mode);
        match (&item.field_ref, &item.resource_field_ref) {
            (None, None) => errors.required(format!("{at}.fieldRef")),
            (Some(_), Some(_)) => errors.push(
                at,
                "Invalid value: \"\": fieldRef and resourceFieldRef can not be specified simultaneously".into(),
            ),
            _ => {}
        }
    }
}

/// The configMap, secret, downwardAPI and projected sources.
fn validate_written_volume(errors: &mut Errors, path: &str, v: &Volume) {
    if let Some(cm) = &v.config_map {
        let at = format!("{path}.configMap");
        if cm.name.is_empty() {
            errors.required(format!("{at}.name"));
        }
        validate_mode(errors, format!("{at}.defaultMode"), cm.default_mode);
        validate_items(errors, &at, cm.items.as_deref());
    }
    if let Some(secret) = &v.secret {
        let at = format!("{path}.secret");
        if secret.secret_name.as_deref().is_none_or(str::is_empty) {
            errors.required(format!("{at}.secretName"));
        }
        validate_mode(errors, format!("{at}.defaultMode"), secret.default_mode);
        validate_items(errors, &at, secret.items.as_deref());
    }
    if let Some(downward) = &v.downward_api {
        let at = format!("{path}.downwardAPI");
        validate_mode(errors, format!("{at}.defaultMode"), downward.default_mode);
        validate_downward_items(errors, &at, downward.items.as_deref().unwrap_or_default());
    }
    if let Some(projected) = &v.projected {
        let at = format!("{path}.projected");
        validate_mode(errors, format!("{at}.defaultMode"), projected.default_mode);
        for (k, source) in projected.sources.iter().flatten().enumerate() {
            let at = format!("{at}.sources[{k}]");
            if let Some(cm) = &source.config_map {
                validate_items(errors, &format!("{at}.configMap"), cm.items.as_deref());
            }
            if let Some(secret) = &source.secret {
                validate_items(errors, &format!("{at}.secret"), secret.items.as_deref());
            }
            if let Some(d) = &source.downward_api {
                validate_downward_items(
                    errors,
                    &format!("{at}.downwardAPI"),
                    d.items.as_deref().unwrap_or_default(),
                );
            }
        }
    }
}

fn validate_sub_path(errors: &mut Errors, field: String, sub: &str) {
    if sub.starts_with('/') {
        errors.invalid(field, sub, "must be a relative path");
    } else if sub.split('/').any(|p| p == "..") {
        errors.invalid(field, sub, "must not contain '..'");
    }
}

fn validate_container(errors: &mut Errors, path: &str, c: &Container, volumes: &HashSet<String>) {
    if c.name.is_empty() {
        errors.required(format!("{path}.name"));
    } else {
        check_dns_label(errors, &format!("{path}.name"), &c.name);
    }
    match c.image.as_deref() {
        None => errors.required(format!("{path}.image")),
        Some(i) if i.trim().is_empty() => errors.required(format!("{path}.image")),
        Some(i) if i.trim() != i => errors.invalid(
            format!("{path}.image"),
            i,
            "must not have leading or trailing whitespace",
        ),
        _ => {}
    }
    let mut mount_paths = HashSet::new();
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{path}.volumeMounts[{j}]");
        if m.name.is_empty() {
            errors.required(format!("{mp}.name"));
        } else if !volumes.contains(&m.name) {
            errors.not_found(format!("{mp}.name"), &m.name);
        }
        if m.mount_path.is_empty() {
            errors.required(format!("{mp}.mountPath"));
        } else if !m.mount_path.starts_with('/') {
            errors.invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must be an absolute path",
            );
        } else if !mount_paths.insert(m.mount_path.trim_end_matches('/').to_string()) {
            errors.invalid(format!("{mp}.mountPath"), &m.mount_path, "must be unique");
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            validate_sub_path(errors, format!("{mp}.subPath"), sub);
        }
    }
    let mut port_names = HashSet::new();
    for (j, p) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{path}.ports[{j}]");
        if !(1..=65535).contains(&p.container_port) {
            errors.invalid(
                format!("{pp}.containerPort"),
                &p.container_port.to_string(),
                "must be between 1 and 65535, inclusive",
            );
        }
        // 0 is "no host port", as the API server reads it (protobuf
        // clients such as `kubectl create deployment --port` send it).
        if let Some(host) = p.host_port
            && host != 0
            && !(1..=65535).contains(&host)
        {
            errors.invalid(
                format!("{pp}.hostPort"),
                &host.to_string(),
                "must be between 1 and 65535, inclusive",
            );
        }
        if let Some(proto) = &p.protocol
            && !PROTOCOLS.contains(&proto.as_str())
        {
            errors.unsupported(format!("{pp}.protocol"), proto, PROTOCOLS);
        }
        if let Some(name) = &p.name {
            if !super::is_port_name(name) {
                errors.invalid(format!("{pp}.name"), name, "must be no more than 15 characters, lowercase letters, digits and '-', with at least one letter");
            } else if !port_names.insert(name.clone()) {
                errors.duplicate(format!("{pp}.name"), name);
            }
        }
    }
    for (j, e) in c.env.iter().flatten().enumerate() {
        let ep = format!("{path}.env[{j}]");
        if e.name.is_empty() {
            errors.required(format!("{ep}.name"));
        } else if e.name.contains('=') {
            errors.invalid(format!("{ep}.name"), &e.name, "must not contain '='");
        }
        if e.value.is_some() && e.value_from.is_some() {
            errors.invalid(
                format!("{ep}.valueFrom"),
                "",
                "may not be specified when `value` is not empty",
            );
        }
    }
    if let Some(res) = &c.resources {
        let limits = check_resources(
            errors,
            &format!("{path}.resources.limits"),
            res.limits.as_ref(),
        );
        let requests = check_resources(
            errors,
            &format!("{path}.resources.requests"),
            res.requests.as_ref(),
        );
        for (k, req) in &requests {
            if let Some(lim) = limits.get(k)
                && req > lim
            {
                errors.invalid(
                    format!("{path}.resources.requests"),
                    &req.to_string(),
                    &format!("must be less than or equal to {k} limit of {lim}"),
                );
            }
        }
    }
}

fn check_resources(
    errors: &mut Errors,
    path: &str,
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> BTreeMap<String, Quantity> {
    let mut parsed = BTreeMap::new();
    for (k, v) in map.into_iter().flatten() {
        let field = format!("{path}[{k}]");
        if !RESOURCES.contains(&k.as_str()) && !k.contains('/') {
            errors.unsupported(field.clone(), k, RESOURCES);
            continue;
        }
        match Quantity::parse(&v.0) {
            Ok(q) if q.is_negative() => {
                errors.invalid(field, &v.0, "must be greater than or equal to 0")
            }
            Ok(q) => {
                parsed.insert(k.clone(), q);
            }
            Err(e) => errors.invalid(field, &v.0, &e.to_string()),
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    const BASE: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: toolbox\n";

    #[test]
    fn a_plain_pod_is_valid() {
        validate(&pod(BASE)).unwrap();
    }

    #[test]
    fn missing_image_and_bad_names() {
        let err = validate(&pod(&BASE
            .replace("    image: toolbox\n", "")
            .replace("name: c", "name: C_1")))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("Pod \"p\" is invalid:"), "{text}");
        assert!(
            text.contains("spec.containers[0].image: Required value"),
            "{text}"
        );
        assert!(
            text.contains("spec.containers[0].name: Invalid value: \"C_1\""),
            "{text}"
        );
    }

    #[test]
    fn mounts_need_volumes_and_quantities_must_parse() {
        let yaml = format!(
            "{BASE}    volumeMounts:\n    - name: nope\n      mountPath: /x\n      subPath: ../etc\n    resources:\n      limits:\n        memory: 12MB\n"
        );
        let text = validate(&pod(&yaml)).unwrap_err().to_string();
        assert!(
            text.contains("spec.containers[0].volumeMounts[0].name: Not found: \"nope\""),
            "{text}"
        );
        assert!(
            text.contains("subPath: Invalid value: \"../etc\""),
            "{text}"
        );
        assert!(
            text.contains("resources.limits[memory]: Invalid value: \"12MB\""),
            "{text}"
        );
    }

    #[test]
    fn written_volume_paths_stay_inside() {
        let yaml = "metadata:\n  name: p\nspec:\n  volumes:\n  - name: cfg\n    configMap:\n      name: c\n      defaultMode: 1000\n      items:\n      - {key: a, path: ../x}\n      - {key: b, path: /etc/x}\n      - {key: c, path: ..data}\n  - name: s\n    secret: {}\n  containers:\n  - name: c\n    image: toolbox\n";
        let text = validate(&pod(yaml)).unwrap_err().to_string();
        for expected in [
            "spec.volumes[0].configMap.defaultMode: Invalid value: \"1000\": must be a number between 0 and 0777 (octal), both inclusive",
            "spec.volumes[0].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'",
            "spec.volumes[0].configMap.items[1].path: Invalid value: \"/etc/x\": must be a relative path",
            "spec.volumes[0].configMap.items[2].path: Invalid value: \"..data\": must not start with '..'",
            "spec.volumes[1].secret.secretName: Required value",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
    }

    #[test]
    fn restart_policy_and_duplicates() {
        let yaml = BASE.replace("spec:\n", "spec:\n  restartPolicy: Sometimes\n")
            + "  - name: c\n    image: toolbox\n";
        let text = validate(&pod(&yaml)).unwrap_err().to_string();
        assert!(
            text.contains("spec.restartPolicy: Unsupported value: \"Sometimes\""),
            "{text}"
        );
        assert!(
            text.contains("spec.containers[1].name: Duplicate value: \"c\""),
            "{text}"
        );
    }
}
