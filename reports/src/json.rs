//! `report.json`: the whole [`Report`], versioned by its `version` field
//! ([`crate::report::REPORT_VERSION`]).

use anyhow::Result;

use crate::report::Report;

pub fn render(r: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(r)?)
}
