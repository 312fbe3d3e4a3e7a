//! Typed, layered configuration: defaults (the type's `Default`) →
//! `--config` file (TOML) → `GRIDWATCH__…` environment variables (`__`
//! between nested keys, e.g. `GRIDWATCH__STATUS__UNPATROLLED_RED_MIN`) →
//! command-line flags. The types deny unknown fields, so a misspelt key is
//! an error rather than a silent default.

use std::path::Path;

use crate::error::RuntimeError;

/// Loads `T`: its defaults, then `file`, then `GRIDWATCH__…` variables,
/// then `overrides` (key → value; `None` leaves the key alone).
///
/// Fails when the file cannot be read or a key is unknown or mistyped.
pub fn load<T: serde::de::DeserializeOwned>(
    file: Option<&Path>,
    overrides: &[(&str, Option<String>)],
) -> Result<T, RuntimeError> {
    let mut b = config::Config::builder();
    if let Some(f) = file {
        b = b.add_source(config::File::from(f).format(config::FileFormat::Toml));
    }
    b = b.add_source(
        config::Environment::with_prefix("GRIDWATCH")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    for (k, v) in overrides {
        if let Some(v) = v {
            b = b
                .set_override(*k, v.clone())
                .map_err(|e| RuntimeError::Config(e.to_string()))?;
        }
    }
    b.build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| RuntimeError::Config(e.to_string()))
}

/// A path as a config override value.
pub fn path_value(p: Option<&Path>) -> Option<String> {
    p.map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Demo {
        listen: String,
        queue: u64,
    }

    impl Default for Demo {
        fn default() -> Self {
            Demo {
                listen: "127.0.0.1:8080".into(),
                queue: 256,
            }
        }
    }

    #[test]
    fn layers_defaults_file_and_flags_and_rejects_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("gw-runtime-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, "queue = 9\n").expect("write");
        let d: Demo = load(None, &[]).expect("defaults");
        assert_eq!(d, Demo::default());
        let f: Demo = load(Some(&file), &[("listen", Some("0.0.0.0:1".into()))]).expect("layers");
        assert_eq!(
            f,
            Demo {
                listen: "0.0.0.0:1".into(),
                queue: 9
            }
        );
        std::fs::write(&file, "qeueu = 9\n").expect("write");
        let e = load::<Demo>(Some(&file), &[]).expect_err("unknown key");
        assert!(e.to_string().contains("qeueu"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
