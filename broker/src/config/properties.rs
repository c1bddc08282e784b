//! Reading `server.properties` and `--override key=value` flags into one key/value map,
//! the way `kafka-server-start.sh` does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::ConfigError;

/// Raw properties: later sources override earlier ones.
pub type Properties = BTreeMap<String, String>;

/// Reads a Java properties file (the format Kafka's own config files use).
pub fn read_file(path: &Path) -> Result<Properties, ConfigError> {
    let file = File::open(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let map = java_properties::read(BufReader::new(file)).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(map.into_iter().collect())
}

/// Applies one `key=value` override.
pub fn apply_override(props: &mut Properties, arg: &str) -> Result<(), ConfigError> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| ConfigError::BadOverride(arg.to_string()))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(ConfigError::BadOverride(arg.to_string()));
    }
    props.insert(key.to_string(), value.trim().to_string());
    Ok(())
}
