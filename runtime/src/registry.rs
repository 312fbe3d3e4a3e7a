//! The registry a service runs on.

use gridwatch_model::Registry;
use std::path::Path;

use crate::error::RuntimeError;

/// Loads the registry at `path`, or the Beilun registry built in.
///
/// Fails naming the file, or the place and field that are wrong.
pub fn load(path: Option<&Path>) -> Result<Registry, RuntimeError> {
    let Some(p) = path else {
        return Ok(Registry::from_json(
            gridwatch_model::registry::BEILUN_REGISTRY_JSON,
        )?);
    };
    let text = std::fs::read_to_string(p).map_err(|e| RuntimeError::Io {
        path: p.display().to_string(),
        source: e,
    })?;
    Ok(Registry::from_json(&text)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_registry_loads_and_a_missing_file_is_named() {
        let reg = super::load(None).expect("built-in registry");
        assert_eq!(reg.microgrids.len(), 4477);
        let e = super::load(Some(std::path::Path::new("/nonexistent/reg.json")))
            .expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/reg.json"), "{e}");
    }
}
