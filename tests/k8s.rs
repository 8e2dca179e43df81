//! `deploy/k8s/` checked offline: every manifest against Kubernetes' own
//! schemas (kubernetes-validate, strict), the KEDA ScaledObject against
//! KEDA's CRD schema (vendored in deploy/k8s/keda/ with its licence), and
//! the cross-references no schema sees: the ConfigMap's TOML is a valid
//! daemon configuration (loaded by the daemon's own `Settings` loader), ports,
//! probe paths, labels and selectors agree, the grace period outlasts the
//! drain, the ScaledObject points at the Deployment, the group and the topic
//! the daemon consumes, and never scales past the topic's partitions.
//!
//! Needs `scripts/setup.sh --test` (kubernetes-validate in .local/venv).

mod common;

use std::path::Path;
use std::process::Command;

use common::tools::{root, venv_tool};
use lstm_ae::config::Settings;
use yaml_rust2::{Yaml, YamlLoader};

const K8S: &str = "deploy/k8s";

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn doc(file: &str) -> Yaml {
    let rel = format!("{K8S}/{file}");
    let mut docs = YamlLoader::load_from_str(&read(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.remove(0)
}

fn s<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {y:?}"))
}

fn i(y: &Yaml, what: &str) -> i64 {
    y.as_i64()
        .unwrap_or_else(|| panic!("{what}: not an integer: {y:?}"))
}

/// The files `kustomization.yaml` applies.
fn resources() -> Vec<String> {
    let k = doc("kustomization.yaml");
    k["resources"]
        .as_vec()
        .expect("kustomization.yaml: resources")
        .iter()
        .map(|r| s(r, "resources[]").to_string())
        .collect()
}

fn kubernetes_validate(file: &Path) -> (bool, String) {
    let out = Command::new(venv_tool("kubernetes-validate"))
        .arg("--strict")
        .arg(file)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_manifest_passes_kubernetes_schemas_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = resources()
        .iter()
        .map(|r| root().join(K8S).join(r))
        .collect();
    // The vendored CRD is itself a Kubernetes object.
    files.push(root().join(K8S).join("keda/keda.sh_scaledobjects.yaml"));
    for f in &files {
        let (ok, text) = kubernetes_validate(f);
        assert!(ok, "{}: {text}", f.display());
        let kind = s(
            &YamlLoader::load_from_str(&std::fs::read_to_string(f).unwrap()).unwrap()[0]["kind"],
            "kind",
        )
        .to_string();
        // Kubernetes has no schema for the operators' kinds: KEDA's is
        // checked below; the PodMonitor by the cross-references.
        if kind == "ScaledObject" || kind == "PodMonitor" {
            assert!(
                text.contains("Couldn't find schema"),
                "{}: {text}",
                f.display()
            );
        } else {
            assert!(
                text.contains("passed"),
                "{} ({kind}) was not validated: {text}",
                f.display()
            );
        }
    }

    // The validator does reject a broken manifest (an unknown field, strict).
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        read(&format!("{K8S}/deployment.yaml"))
            .replace("terminationGracePeriodSeconds", "terminationGraceSeconds"),
    )
    .unwrap();
    let (ok, text) = kubernetes_validate(&bad);
    assert!(!ok, "a misspelt field passed: {text}");
}

/// Validates `doc` (a YAML file) against the v1alpha1 schema of KEDA's CRD,
/// with unknown fields refused wherever the schema lists the properties
/// (Kubernetes would silently prune them: a misspelt `maxReplicas` must fail).
fn keda_validate(doc: &Path) -> (bool, String) {
    const SCRIPT: &str = r#"
import sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")["schema"]["openAPIV3Schema"]
def strict(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node \
           and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
strict(schema)
obj = yaml.safe_load(open(sys.argv[2]))
assert obj["apiVersion"] == "keda.sh/v1alpha1" and obj["kind"] == crd["spec"]["names"]["kind"], "kind/apiVersion"
# metadata is the API server's, not in the CRD's schema.
obj.pop("metadata", None)
jsonschema.Draft7Validator(schema).validate(obj)
print("valid")
"#;
    let out = Command::new(venv_tool("python"))
        .arg("-c")
        .arg(SCRIPT)
        .arg(root().join(K8S).join("keda/keda.sh_scaledobjects.yaml"))
        .arg(doc)
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("valid"), text)
}

#[test]
fn the_scaled_object_passes_kedas_crd_schema() {
    let so = root().join(K8S).join("scaledobject.yaml");
    let (ok, text) = keda_validate(&so);
    assert!(ok, "scaledobject.yaml against KEDA's CRD: {text}");
    assert!(
        root().join(K8S).join("keda/LICENSE").is_file(),
        "the vendored CRD comes with KEDA's licence"
    );

    // And the check can fail: a misspelt field, a wrong type.
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("maxReplicaCount: 6", "maxReplicas: 6"),
        ("minReplicaCount: 1", "minReplicaCount: one"),
        ("lagThreshold: \"100000\"", "lagThreshold: 100000"),
    ] {
        let text = read(&format!("{K8S}/scaledobject.yaml"));
        assert!(text.contains(from), "{from}");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, text.replace(from, to)).unwrap();
        let (ok, out) = keda_validate(&bad);
        assert!(!ok, "{to} passed KEDA's schema: {out}");
    }
}

fn labels_match(selector: &Yaml, labels: &Yaml, what: &str) {
    let sel = selector
        .as_hash()
        .unwrap_or_else(|| panic!("{what}: no selector"));
    assert!(!sel.is_empty(), "{what}: empty selector");
    for (k, v) in sel {
        assert_eq!(
            &labels[s(k, what)],
            v,
            "{what}: selector {k:?}={v:?} does not match the pod template's labels"
        );
    }
}

#[test]
fn the_manifests_agree_with_each_other_and_with_the_daemon() {
    // Every manifest here is applied (or is the documented placeholder).
    let res = resources();
    for e in std::fs::read_dir(root().join(K8S)).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(res.contains(&name), "{name} is not in kustomization.yaml");
        }
    }

    // The ConfigMap's TOML is the daemon's configuration: its own loader,
    // with its unknown-key refusal and validation, accepts it.
    let cm = doc("configmap.yaml");
    let cm_name = s(&cm["metadata"]["name"], "ConfigMap name");
    let data = cm["data"].as_hash().expect("ConfigMap data");
    assert_eq!(data.len(), 1, "one file in the ConfigMap");
    let (file_name, toml) = data.iter().next().unwrap();
    let file_name = s(file_name, "ConfigMap key");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join(file_name);
    std::fs::write(&cfg, s(toml, "ConfigMap TOML")).unwrap();
    let settings = Settings::load_with_env(Some(&cfg), std::iter::empty()).unwrap_or_else(|e| {
        panic!("configmap.yaml's {file_name} is not a valid daemon config: {e}")
    });
    let metrics_port: i64 = settings
        .serve
        .metrics_listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("serve.metrics_listen has a port");
    assert!(
        settings.serve.metrics_listen.starts_with("0.0.0.0:"),
        "in a pod, metrics must listen beyond loopback for the kubelet's probes and Prometheus"
    );

    // Deployment: labels, the config mount, ports, probes, grace period.
    let dep = doc("deployment.yaml");
    let dep_name = s(&dep["metadata"]["name"], "Deployment name");
    let spec = &dep["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    labels_match(&spec["selector"]["matchLabels"], pod_labels, "Deployment");
    assert!(
        spec["replicas"].is_badvalue(),
        "no replicas: KEDA owns the count"
    );
    let pod = &spec["template"]["spec"];
    let containers = pod["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let args: Vec<&str> = c["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| s(a, "args"))
        .collect();
    assert_eq!(args[0], "serve");
    let config_arg = args
        .iter()
        .position(|a| *a == "--config")
        .map(|p| Path::new(args[p + 1]))
        .expect("serve --config");
    assert_eq!(config_arg.file_name().unwrap().to_string_lossy(), file_name);
    let mount = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| Path::new(s(&m["mountPath"], "mountPath")) == config_arg.parent().unwrap())
        .expect("the config folder is mounted");
    let volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mount's volume");
    assert_eq!(s(&volume["configMap"]["name"], "volume configMap"), cm_name);

    let port = c["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("metrics"))
        .expect("a container port named metrics");
    assert_eq!(
        i(&port["containerPort"], "containerPort"),
        metrics_port,
        "the port serve.metrics_listen binds"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(s(&get["path"], probe), path, "{probe}");
        assert_eq!(s(&get["port"], probe), "metrics", "{probe}");
    }
    let grace = i(
        &pod["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    assert!(
        grace * 1000 > settings.serve.drain_timeout_ms as i64 + 5000,
        "terminationGracePeriodSeconds {grace} s must outlast serve.drain_timeout_ms {} ms with margin",
        settings.serve.drain_timeout_ms
    );
    let req = &c["resources"]["requests"];
    assert!(
        req["cpu"].as_str().is_some() && req["memory"].as_str().is_some(),
        "resource requests"
    );

    // The image's user and paths (Dockerfile) are what the pod expects.
    let dockerfile = read("Dockerfile");
    let uid = i(&pod["securityContext"]["runAsUser"], "runAsUser");
    assert!(
        dockerfile
            .lines()
            .any(|l| l.trim() == format!("USER {uid}:{uid}")),
        "runAsUser {uid} is the image's USER"
    );
    // serve.model is the shared model store (a PVC, mounted where it
    // points), seeded by the init container with the model the image ships;
    // the retrain CronJob writes to the same store on the same claim.
    let pvc = doc("pvc-models.yaml");
    let claim = s(&pvc["metadata"]["name"], "PVC name");
    assert!(
        pvc["spec"]["accessModes"]
            .as_vec()
            .unwrap()
            .iter()
            .any(|m| m.as_str() == Some("ReadWriteMany")),
        "replicas on several nodes and the CronJob share the store: ReadWriteMany"
    );
    let store = Path::new(&settings.serve.model);
    let claim_mounted_at = |pod: &Yaml, c: &Yaml, what: &str| -> String {
        let vol = pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["persistentVolumeClaim"]["claimName"].as_str() == Some(claim))
            .unwrap_or_else(|| panic!("{what}: no volume of claim {claim}"));
        let m = c["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|m| m["name"] == vol["name"])
            .unwrap_or_else(|| panic!("{what}: the store's volume is not mounted"));
        s(&m["mountPath"], "mountPath").to_string()
    };
    assert!(
        store.starts_with(claim_mounted_at(pod, c, "daemon")),
        "serve.model {} is on the store's volume",
        store.display()
    );
    let init = &pod["initContainers"]
        .as_vec()
        .expect("an init container seeds the store")[0];
    let init_args: Vec<&str> = init["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| s(a, "args"))
        .collect();
    assert_eq!(init_args[..3], ["models", "import", "--if-empty"]);
    assert_eq!(
        Path::new(init_args[3]),
        store,
        "the init container seeds serve.model"
    );
    assert!(
        dockerfile.contains(&format!("/rootfs{}/", init_args[4])),
        "the seed {} is the model the image ships",
        init_args[4]
    );
    assert!(store.starts_with(claim_mounted_at(pod, init, "init container")));
    let cron = doc("cronjob-retrain.yaml");
    let cpod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let cc = &cpod["containers"][0];
    let cargs: Vec<&str> = cc["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| s(a, "args"))
        .collect();
    assert_eq!(cargs[0], "retrain");
    let at = |flag: &str| cargs[cargs.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(
        Path::new(at("--store")),
        store,
        "the CronJob retrains serve.model's store"
    );
    assert_eq!(
        Path::new(at("--config")),
        config_arg,
        "the CronJob reads the daemon's config"
    );
    assert!(store.starts_with(claim_mounted_at(cpod, cc, "CronJob")));
    let cvol = cpod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"].as_str() == Some(cm_name))
        .expect("the CronJob mounts the daemon's ConfigMap");
    assert!(cc["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .any(|m| m["name"] == cvol["name"]
            && Path::new(s(&m["mountPath"], "mountPath")) == config_arg.parent().unwrap()));
    assert!(
        settings.serve.model_poll_ms > 0,
        "the daemons poll the store"
    );
    assert!(
        dockerfile.contains(&format!("/rootfs{}", settings.runtime.onnxruntime_library)),
        "runtime.onnxruntime_library is where the image puts ONNX Runtime"
    );

    // Service, PodMonitor, PodDisruptionBudget select these pods, on that port.
    let svc = doc("service.yaml");
    labels_match(&svc["spec"]["selector"], pod_labels, "Service");
    let sp = &svc["spec"]["ports"][0];
    assert_eq!(s(&sp["targetPort"], "Service targetPort"), "metrics");
    let pm = doc("podmonitor.yaml");
    labels_match(
        &pm["spec"]["selector"]["matchLabels"],
        pod_labels,
        "PodMonitor",
    );
    let ep = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(s(&ep["port"], "PodMonitor port"), "metrics");
    assert_eq!(s(&ep["path"], "PodMonitor path"), "/metrics");
    // The job label the alerts and the dashboard select on.
    let job = s(
        &pod_labels[s(&pm["spec"]["jobLabel"], "jobLabel")],
        "the jobLabel's pod label",
    );
    assert!(
        read("deploy/prometheus/alerts.yml").contains(&format!("job=\"{job}\"")),
        "the PodMonitor's job {job:?} is the one alerts.yml selects"
    );
    let pdb = doc("poddisruptionbudget.yaml");
    labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        pod_labels,
        "PodDisruptionBudget",
    );

    // KEDA: the Deployment, the daemon's group, topic and brokers; no more
    // replicas than partitions.
    let so = doc("scaledobject.yaml");
    let sospec = &so["spec"];
    assert_eq!(
        s(&sospec["scaleTargetRef"]["name"], "scaleTargetRef"),
        dep_name
    );
    let trig = &sospec["triggers"][0];
    assert_eq!(s(&trig["type"], "trigger type"), "kafka");
    let m = &trig["metadata"];
    assert_eq!(
        s(&m["consumerGroup"], "consumerGroup"),
        settings.kafka.group_id
    );
    assert!(
        settings
            .kafka
            .inputs
            .iter()
            .any(|t| t.topic == s(&m["topic"], "topic")),
        "the lag is measured on an input topic"
    );
    assert_eq!(
        s(&m["bootstrapServers"], "bootstrapServers"),
        settings.kafka.brokers
    );
    let partitions: i64 = s(
        &so["metadata"]["annotations"]["lstm-ae/input-partitions"],
        "input-partitions",
    )
    .parse()
    .unwrap();
    let (min, max) = (
        i(&sospec["minReplicaCount"], "minReplicaCount"),
        i(&sospec["maxReplicaCount"], "maxReplicaCount"),
    );
    assert!(
        1 <= min && min <= max && max <= partitions,
        "1 ≤ {min} ≤ {max} ≤ {partitions} partitions"
    );
}
