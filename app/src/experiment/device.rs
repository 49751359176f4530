//! The device an experiment names: "cpu" or "cuda:N".

/// A device as named in an experiment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceName {
    Cpu,
    Cuda(usize),
}

/// Parses a device name; the message says what is accepted.
pub fn parse_device(text: &str) -> Result<DeviceName, String> {
    let text = text.trim();
    if text == "cpu" {
        return Ok(DeviceName::Cpu);
    }
    if text == "cuda" {
        return Ok(DeviceName::Cuda(0));
    }
    if let Some(index) = text.strip_prefix("cuda:")
        && let Ok(i) = index.parse()
    {
        return Ok(DeviceName::Cuda(i));
    }
    Err(format!(
        "expected \"cpu\" or \"cuda:N\" (e.g. \"cuda:0\"), found {text:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(parse_device("cpu"), Ok(DeviceName::Cpu));
        assert_eq!(parse_device("cuda:1"), Ok(DeviceName::Cuda(1)));
        assert_eq!(parse_device("cuda"), Ok(DeviceName::Cuda(0)));
        assert!(parse_device("gpu").unwrap_err().contains("cuda:N"));
        assert!(parse_device("cuda:x").is_err());
    }
}
