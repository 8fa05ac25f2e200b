//! Number formatting shared by every output, so the HTML, the Markdown and
//! the verdict sentence never disagree about a figure.

/// A p-value with two significant digits: 0.49, 0.029, 0.00016, 3.2e-07.
pub fn p_value(p: f64) -> String {
    if !p.is_finite() {
        return "n/a".into();
    }
    if p >= 0.995 {
        return "1".into();
    }
    if p < 1e-5 {
        return format!("{p:.1e}");
    }
    let digits = (1 - p.log10().floor() as i32).max(2) as usize;
    format!("{p:.digits$}")
}

/// A rate as a percentage: whole percents, one decimal below 10 %.
pub fn percent(x: f64) -> String {
    let v = x * 100.0;
    if v == 0.0 || v >= 10.0 || (v - v.round()).abs() < 0.05 {
        format!("{v:.0}%")
    } else {
        format!("{v:.1}%")
    }
}

/// A Wilson interval as "[68–100%]".
pub fn interval(ci: Option<(f64, f64)>) -> String {
    match ci {
        Some((lo, hi)) => {
            let (lo, hi) = (percent(lo), percent(hi));
            format!("[{}–{hi}]", lo.trim_end_matches('%'))
        }
        None => "[n/a]".into(),
    }
}

/// Microseconds in the unit a person reads them in.
pub fn micros(us: f64) -> String {
    let (n, unit) = micros_parts(us);
    format!("{n} {unit}")
}

fn micros_parts(us: f64) -> (String, &'static str) {
    if us < 1000.0 {
        (format!("{us:.0}"), "µs")
    } else if us < 10_000.0 {
        (format!("{:.2}", us / 1000.0), "ms")
    } else if us < 1_000_000.0 {
        (format!("{:.1}", us / 1000.0), "ms")
    } else {
        (format!("{:.2}", us / 1e6), "s")
    }
}

/// A latency with its interval, the unit written once when they share it:
/// "3.01 [2.92–3.08] ms".
pub fn micros_ci(us: f64, lo: f64, hi: f64) -> String {
    let (v, l, h) = (micros_parts(us), micros_parts(lo), micros_parts(hi));
    if v.1 == l.1 && v.1 == h.1 {
        format!("{} [{}–{}] {}", v.0, l.0, h.0, v.1)
    } else {
        format!("{} [{}–{}]", micros(us), micros(lo), micros(hi))
    }
}

/// Milliseconds of wall time as "1 h 02 min", "3 min 05 s" or "42.1 s".
pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// A relative change as "+12%" or "−3%".
pub fn change(ratio: f64) -> String {
    let pct = (ratio - 1.0) * 100.0;
    if pct.abs() < 0.5 {
        "±0%".into()
    } else if pct > 0.0 {
        format!("+{pct:.0}%")
    } else {
        format!("−{:.0}%", -pct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(p_value(0.0001554001554001554), "0.00016");
        assert_eq!(p_value(0.48571428571428565), "0.49");
        assert_eq!(p_value(0.028671314973177094), "0.029");
        assert_eq!(p_value(1.0), "1");
        assert_eq!(p_value(4.168809109334511e-07), "4.2e-7");
        assert_eq!(interval(Some((0.6755924351161198, 1.0))), "[68–100%]");
        assert_eq!(interval(Some((0.0, 0.3543304350666875))), "[0–35%]");
        assert_eq!(
            interval(Some((0.03813026239274881, 0.06531382024425081))),
            "[3.8–6.5%]"
        );
        assert_eq!(micros(850.0), "850 µs");
        assert_eq!(micros(23551.0), "23.6 ms");
        assert_eq!(micros(3455.0), "3.46 ms");
        assert_eq!(micros_ci(3010.0, 2920.0, 3080.0), "3.01 [2.92–3.08] ms");
        assert_eq!(micros_ci(1010.0, 990.0, 1050.0), "1.01 ms [990 µs–1.05 ms]");
        assert_eq!(duration_ms(18924), "18.9 s");
        assert_eq!(duration_ms(3_725_000), "1 h 02 min");
        assert_eq!(change(1.25), "+25%");
        assert_eq!(change(0.9), "−10%");
    }
}
