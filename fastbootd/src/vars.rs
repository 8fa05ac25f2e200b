//! `getvar`: what the device tells a host about itself and its partitions.
//! The host's `fastboot flash` asks for max-download-size, has-slot,
//! is-logical, partition-type and partition-size before it sends anything.

use crate::config::Config;
use crate::partition::Table;

/// Variables of the device itself, in the order `getvar:all` lists them.
fn device_vars(config: &Config) -> [(&'static str, String); 6] {
    [
        ("version", "0.4".into()),
        ("product", config.product.clone()),
        ("serialno", config.serialno.clone()),
        (
            "max-download-size",
            format!("0x{:08x}", config.max_download),
        ),
        // The bootloader, not userspace fastbootd: no logical partitions.
        ("is-userspace", "no".into()),
        ("secure", "no".into()),
    ]
}

/// Variables of one partition, `(name, value)`; none is ever A/B or logical.
fn partition_vars(name: &str, size: u64) -> [(String, String); 4] {
    [
        (format!("partition-size:{name}"), format!("0x{size:016x}")),
        (format!("partition-type:{name}"), "raw".into()),
        (format!("has-slot:{name}"), "no".into()),
        (format!("is-logical:{name}"), "no".into()),
    ]
}

/// The value of `var`, or None for a variable the device does not have.
pub fn get(var: &str, config: &Config, table: &Table) -> Option<String> {
    if let Some((_, v)) = device_vars(config).into_iter().find(|(n, _)| *n == var) {
        return Some(v);
    }
    let (_, part) = var.split_once(':')?;
    let size = table.get(part)?.size();
    partition_vars(part, size)
        .into_iter()
        .find(|(n, _)| n == var)
        .map(|(_, v)| v)
}

/// `getvar:all`: every variable as "name:value" (the form AOSP's devices
/// use), one INFO line each.
pub fn all(config: &Config, table: &Table) -> Vec<String> {
    let device = device_vars(config).map(|(n, v)| format!("{n}:{v}"));
    let parts = table
        .iter()
        .flat_map(|(name, p)| partition_vars(name, p.size()))
        .map(|(n, v)| format!("{n}:{v}"));
    device.into_iter().chain(parts).collect()
}
