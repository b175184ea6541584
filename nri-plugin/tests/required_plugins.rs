//! The NRI name and index d4c registers under are the ones the shipped required-plugins
//! snippets name (`install/containerd/required-plugins.toml`,
//! `install/crio/20-required-plugins.conf`): with them, the runtime refuses a container
//! while d4c is not registered. Checked against the fake runtime (the real wire format).

#[path = "../../nri/tests/fake_runtime/mod.rs"]
mod fake_runtime;

use std::path::Path;
use std::sync::Arc;

use fake_runtime::{within, FakeRuntime, Recorder};

/// The quoted entries of the `KEY = [...]` line of a snippet.
fn required(file: &str, key: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key) && l[key.len()..].trim_start().starts_with('='))
        .unwrap_or_else(|| panic!("{file}: no `{key} =` line"));
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn d4c_registers_under_the_name_the_required_plugins_snippets_require() {
    let shipped = d4c::config::Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/d4c.yaml"),
    )
    .unwrap();
    let default = d4c::config::Config::default();
    assert_eq!(
        (&shipped.plugin_name, &shipped.plugin_index),
        (&default.plugin_name, &default.plugin_index)
    );
    let rt = FakeRuntime::new();
    let mut plugin =
        d4c_nri::PluginConfig::external(&shipped.plugin_name, &shipped.plugin_index, &rt.path)
            .unwrap();
    let task = tokio::spawn(async move {
        d4c_nri::run(
            &mut plugin,
            Arc::new(Recorder::default()),
            std::future::pending(),
        )
        .await
    });
    let conn = rt.accept().await;
    let registered = format!("{}-{}", conn.idx, conn.name);
    assert_eq!(registered, "50-d4c");
    for (file, key) in [
        (
            "install/containerd/required-plugins.toml",
            "required_plugins",
        ),
        (
            "install/crio/20-required-plugins.conf",
            "nri_validator_required_plugins",
        ),
    ] {
        let names = required(file, key);
        assert!(
            names.contains(&registered) || names.contains(&conn.name),
            "{file} requires {names:?}, d4c registers as {registered}"
        );
    }
    conn.close().await;
    let _ = within("plugin end", task).await;
}
