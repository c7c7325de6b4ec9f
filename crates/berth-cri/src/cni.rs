//! Pod networking through CNI plugins, as the CNI spec (0.4/1.0) runs them: the first network
//! config in `--cni-conf-dir` (a `.conflist`, or a single-plugin `.conf`/`.json`), each plugin
//! of it run from `--cni-bin-dir` with the pod's namespace, `ADD` in order at sandbox start
//! (each given the previous result) and `DEL` in reverse at stop (given the last result).
//! hostPort mappings go to plugins that declare the `portMappings` capability (portmap).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

/// Where the CNI's configs and plugins are.
#[derive(Debug, Clone)]
pub struct Cni {
    pub conf_dir: PathBuf,
    pub bin_dir: PathBuf,
}

/// What a plugin is run for.
pub struct Call<'a> {
    pub sandbox: &'a str,
    pub netns: &'a Path,
    /// `K8S_POD_NAMESPACE`, `K8S_POD_NAME`.
    pub pod: (&'a str, &'a str),
    /// `runtimeConfig.portMappings`.
    pub ports: Value,
}

impl Cni {
    /// The network config list to use: the first by file name, as libcni picks it.
    pub fn network(&self) -> Result<Value, String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.conf_dir)
            .map_err(|e| format!("reading {}: {e}", self.conf_dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect();
        files.sort();
        let path = files
            .first()
            .ok_or_else(|| format!("no network config in {}", self.conf_dir.display()))?;
        let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let v: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("parsing {}: {e}", path.display()))?;
        if v.get("plugins").is_some() {
            return Ok(v);
        }
        // A single plugin's config: a list of one.
        Ok(json!({
            "cniVersion": v["cniVersion"].clone(),
            "name": v["name"].clone(),
            "plugins": [v],
        }))
    }

    /// Whether a network config and its plugins are there (the runtime's `NetworkReady`).
    pub fn ready(&self) -> Result<(), String> {
        let net = self.network()?;
        for p in net["plugins"].as_array().into_iter().flatten() {
            let kind = p["type"].as_str().unwrap_or_default();
            if !self.bin_dir.join(kind).is_file() {
                return Err(format!(
                    "CNI plugin {kind} not in {}",
                    self.bin_dir.display()
                ));
            }
        }
        Ok(())
    }

    /// Adds the pod to the network; the final result (its `ips`).
    pub fn add(&self, call: &Call<'_>) -> Result<Value, String> {
        let net = self.network()?;
        let mut prev: Option<Value> = None;
        let plugins = net["plugins"].as_array().cloned().unwrap_or_default();
        for (i, p) in plugins.iter().enumerate() {
            match self.run("ADD", &net, p, call, prev.as_ref()) {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    // Undo the plugins that ran, newest first, and report the first error.
                    for done in plugins[..i].iter().rev() {
                        let _ = self.run("DEL", &net, done, call, prev.as_ref());
                    }
                    return Err(e);
                }
            }
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// Removes the pod from the network (every plugin, newest first; the first error kept).
    pub fn del(&self, call: &Call<'_>, result: Option<&Value>) -> Result<(), String> {
        let net = self.network()?;
        let mut first = Ok(());
        for p in net["plugins"].as_array().into_iter().flatten().rev() {
            if let Err(e) = self.run("DEL", &net, p, call, result) {
                first = first.and(Err(e));
            }
        }
        first
    }

    fn run(
        &self,
        command: &str,
        net: &Value,
        plugin: &Value,
        call: &Call<'_>,
        prev: Option<&Value>,
    ) -> Result<Value, String> {
        let kind = plugin["type"].as_str().unwrap_or_default();
        if kind.is_empty() || kind.contains('/') {
            return Err(format!("invalid CNI plugin type {kind:?}"));
        }
        let mut conf = plugin.clone();
        conf["name"] = net["name"].clone();
        conf["cniVersion"] = net["cniVersion"].clone();
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        if plugin["capabilities"]["portMappings"] == json!(true) {
            conf["runtimeConfig"] = json!({ "portMappings": call.ports });
        }
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
            call.pod.0, call.pod.1, call.sandbox
        );
        #[allow(clippy::disallowed_methods)] // CNI plugins are executables by the spec
        let mut child = std::process::Command::new(self.bin_dir.join(kind))
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", call.sandbox)
            .env("CNI_NETNS", call.netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.bin_dir)
            .env("CNI_ARGS", args)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running CNI plugin {kind}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(conf.to_string().as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("running CNI plugin {kind}: {e}"))?;
        let result: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            let msg = result["msg"].as_str().map_or_else(
                || String::from_utf8_lossy(&out.stderr).trim().to_string(),
                |m| format!("{m} {}", result["details"].as_str().unwrap_or_default()),
            );
            return Err(format!("CNI plugin {kind} {command}: {}", msg.trim()));
        }
        Ok(result)
    }
}

/// The addresses of a CNI result (without their prefix lengths), IPv4 first.
pub fn ips(result: &Value) -> Vec<String> {
    let mut out: Vec<String> = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect();
    out.sort_by_key(|a| a.contains(':'));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_plugin_config_becomes_a_list_and_the_first_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("20-b.conf"),
            r#"{"cniVersion":"0.4.0","name":"b","type":"bridge"}"#,
        )
        .unwrap();
        let cni = Cni {
            conf_dir: dir.path().into(),
            bin_dir: dir.path().into(),
        };
        let net = cni.network().unwrap();
        assert_eq!(net["name"], "b");
        assert_eq!(net["plugins"][0]["type"], "bridge");
        std::fs::write(
            dir.path().join("10-a.conflist"),
            r#"{"cniVersion":"0.4.0","name":"a","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        assert_eq!(cni.network().unwrap()["name"], "a");
        assert!(cni.ready().unwrap_err().contains("bridge"));
    }

    #[test]
    fn result_addresses_lose_their_prefix_v4_first() {
        let r = json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.1.0.5/16"}]});
        assert_eq!(ips(&r), ["10.1.0.5", "fd00::5"]);
    }
}
