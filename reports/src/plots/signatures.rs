//! The plan's named signatures: how often each deadlocked in each variant,
//! with its Wilson interval, and under each the per-signature verdict, so
//! "did the patch remove this deadlock?" reads at a glance.

use std::collections::BTreeMap;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::rate::{bar, legend_item, light, share_axes};
use super::{color, font, no_data, PlotResult};
use crate::render_util::conclusion_words;
use crate::report::Report;
use crate::stats::rate::wilson;
use crate::verdict::SignatureVerdict;

/// Deadlocks, stalls and valid iterations of one variant for one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigCounts {
    pub deadlocks: u32,
    pub stalls: u32,
    pub valid: u32,
}

/// Signatures in the order the verdicts name them, each with the counts
/// of every variant the verdicts cover (the baseline's appear in each of
/// its comparisons; they are the same counts).
pub fn signature_counts(r: &Report) -> Vec<(String, BTreeMap<String, SigCounts>)> {
    let mut out: Vec<(String, BTreeMap<String, SigCounts>)> = Vec::new();
    for v in &r.signature_verdicts {
        let i = match out.iter().position(|(s, _)| *s == v.signature) {
            Some(i) => i,
            None => {
                out.push((v.signature.clone(), BTreeMap::new()));
                out.len() - 1
            }
        };
        let m = &mut out[i].1;
        m.insert(
            v.baseline.clone(),
            SigCounts {
                deadlocks: v.baseline_deadlocks,
                stalls: v.baseline_stalls,
                valid: v.baseline_valid,
            },
        );
        m.insert(
            v.variant.clone(),
            SigCounts {
                deadlocks: v.variant_deadlocks,
                stalls: v.variant_stalls,
                valid: v.variant_valid,
            },
        );
    }
    out
}

pub(super) fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<()> {
    let title = "Named signatures: deadlock rate per variant (95% Wilson interval)";
    let sigs = signature_counts(r);
    if sigs.is_empty() {
        return no_data(root, title, "the plan names no signature");
    }
    // Variants in report order, those the verdicts cover.
    let variants: Vec<(usize, &str)> = r
        .variants
        .iter()
        .enumerate()
        .filter(|(_, v)| sigs.iter().any(|(_, m)| m.contains_key(&v.label)))
        .map(|(i, v)| (i, v.label.as_str()))
        .collect();
    let body = root.titled(title, font(22)).plot()?;
    let (legend, plot) = body.split_vertically(26);
    let mut x = 70;
    for &(i, label) in &variants {
        x = legend_item(&legend, (x, 12), color(i), color(i), label)?;
    }
    if sigs.iter().any(|(_, m)| m.values().any(|c| c.stalls > 0)) {
        let grey = RGBColor(110, 110, 110);
        legend_item(
            &legend,
            (x, 12),
            light(grey),
            grey,
            "stalls with it (not tested)",
        )?;
    }

    let mut chart = share_axes(
        &plot,
        sigs.len(),
        "deadlocks with the signature / valid iterations",
    )?;
    let names: Vec<(f64, String)> = sigs
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (i as f64, s.clone()))
        .collect();
    super::category_labels(&plot, &chart, &names, 15)?;
    // Under each name, its verdicts, red when an expectation failed.
    for (gi, (sig, _)) in sigs.iter().enumerate() {
        let vs: Vec<&SignatureVerdict> = r
            .signature_verdicts
            .iter()
            .filter(|v| &v.signature == sig)
            .collect();
        let words: Vec<String> = vs
            .iter()
            .map(|v| {
                let e = v.expected.as_deref().unwrap_or("");
                match v.met {
                    Some(true) => format!("{}, as expected", conclusion_words(v)),
                    Some(false) => {
                        format!("NOT AS EXPECTED (absent in {e}): {}", conclusion_words(v))
                    }
                    None => conclusion_words(v),
                }
            })
            .collect();
        let colour = if vs.iter().any(|v| v.met == Some(false)) {
            RGBColor(200, 30, 30)
        } else if !vs.is_empty() && vs.iter().all(|v| v.met == Some(true)) {
            RGBColor(30, 130, 30)
        } else {
            RGBColor(90, 90, 90)
        };
        super::category_labels_at(
            &plot,
            &chart,
            &[(gi as f64, words.join("; "))],
            14,
            28,
            colour,
        )?;
    }

    let k = variants.len().max(1) as f64;
    let group = 0.8;
    let slot = group / k;
    for (gi, (_, counts)) in sigs.iter().enumerate() {
        for (j, &(ci, label)) in variants.iter().enumerate() {
            let Some(c) = counts.get(label) else { continue };
            let x0 = gi as f64 - group / 2.0 + j as f64 * slot;
            let x1 = x0 + slot * 0.82;
            if c.valid == 0 {
                chart
                    .draw_series([Text::new(
                        "no valid iterations",
                        ((x0 + x1) / 2.0, 4.0),
                        font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )])
                    .plot()?;
                continue;
            }
            let rate = c.deadlocks as f64 / c.valid as f64;
            let ci_ = wilson(c.deadlocks as u64, c.valid as u64, 0.95);
            let note = if c.stalls > 0 {
                format!("{}/{} (+{} stalls)", c.deadlocks, c.valid, c.stalls)
            } else {
                format!("{}/{}", c.deadlocks, c.valid)
            };
            let stacked = c.stalls as f64 / c.valid as f64;
            if c.stalls > 0 {
                // Stalls with the signature, stacked lightly above the
                // deadlocks: seen, but not what the test counts.
                let (lo, hi) = (rate * 100.0, (rate + stacked) * 100.0);
                chart
                    .draw_series([Rectangle::new(
                        [(x0, lo), (x1, hi)],
                        light(color(ci)).filled(),
                    )])
                    .plot()?;
                chart
                    .draw_series([Rectangle::new(
                        [(x0, lo), (x1, hi)],
                        color(ci).stroke_width(1),
                    )])
                    .plot()?;
            }
            bar(
                &mut chart,
                (x0, x1),
                rate,
                ci_,
                color(ci),
                color(ci),
                note,
                rate + stacked,
            )?;
        }
    }
    Ok(())
}
