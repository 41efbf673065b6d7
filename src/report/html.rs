//! Self-contained HTML: inline CSS and SVG, no script, no network. Building blocks (tables, line
//! charts with shaded intervals, the HdrHistogram-style percentile plot) that `report` assembles.

use std::fmt::Write;

/// Escape text for HTML content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}.pass{color:#18794e;font-weight:600}\
.fail{color:#c4320a;font-weight:600}.skip{color:#777}.verdict{font-size:1.3em;padding:.4em .8em;display:inline-block;border-radius:4px}\
.verdict.pass{background:#e6f6ec}.verdict.fail{background:#fdecea}\
pre{background:#f7f7f7;padding:.5em;font-size:12px;margin:0;white-space:pre-wrap;overflow-wrap:anywhere}\
svg text{font:11px system-ui,sans-serif;fill:#444}.muted{color:#777}\
.partial{background:#fff4d6;border:1px solid #e8c66a;padding:.5em .8em;border-radius:4px}";

/// A whole page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

/// A table; cells are HTML already (escape text yourself). Figures (a digit, or `-` and a digit,
/// first, and no space: `12`, `3.5ms`, `0.1%`) are right-aligned; text is not.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut x = String::from("<table><tr>");
    for h in headers {
        let _ = write!(x, "<th>{}</th>", escape(h));
    }
    x.push_str("</tr>");
    for r in rows {
        x.push_str("<tr>");
        for c in r {
            let numeric = c.trim_start_matches('-').chars().next().is_some_and(|ch| ch.is_ascii_digit())
                && !c.contains(char::is_whitespace);
            if numeric {
                let _ = write!(x, "<td class=\"num\">{c}</td>");
            } else {
                let _ = write!(x, "<td>{c}</td>");
            }
        }
        x.push_str("</tr>");
    }
    x.push_str("</table>");
    x
}

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Axis scale.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// For the percentile plot: x = 1/(1-q) on a log scale, labelled as percentiles.
    PercentileLog,
}

/// A chart's description.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// Intervals on the x axis to shade (outages), with a label.
    pub shaded: &'a [(f64, f64, String)],
    pub x_scale: Scale,
}

const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = (range / ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let n = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// An inline SVG line chart.
pub fn line_chart(c: &Chart) -> String {
    let (w, h, l, r, t, b) = (900.0, 260.0, 70.0, 190.0, 28.0, 40.0);
    let tx = |x: f64| match c.x_scale {
        Scale::Linear => x,
        Scale::PercentileLog => (1.0 / (1.0 - x.min(0.999999))).log10(),
    };
    let pts: Vec<(f64, f64)> = c.series.iter().flat_map(|s| s.points.iter().map(|&(x, y)| (tx(x), y))).collect();
    let mut x = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\">");
    let _ = write!(x, "<text x=\"{l}\" y=\"16\" style=\"font-weight:600;font-size:13px\">{}</text>", escape(c.title));
    if pts.is_empty() {
        let _ = write!(x, "<text x=\"{l}\" y=\"{}\">no data</text></svg>", h / 2.0);
        return x;
    }
    let (mut x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y1 = pts.iter().fold(0f64, |a, p| a.max(p.1)) * 1.08;
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 };
    if c.x_scale == Scale::Linear {
        for (s, e, _) in c.shaded {
            x0 = x0.min(*s);
            x1 = x1.max(*e);
        }
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let px = |v: f64| l + (v - x0) / (x1 - x0) * (w - l - r);
    let py = |v: f64| h - b - v / y1 * (h - t - b);
    for (s, e, label) in c.shaded {
        let (a, z) = (px(*s), px(*e).max(px(*s) + 2.0));
        let _ = write!(
            x,
            "<rect x=\"{a:.1}\" y=\"{t}\" width=\"{:.1}\" height=\"{}\" fill=\"#f8d7d3\"><title>{}</title></rect>",
            z - a,
            h - t - b,
            escape(label)
        );
    }
    // Axes and ticks.
    let _ = write!(x, "<path d=\"M{l} {t}V{}H{}\" stroke=\"#999\" fill=\"none\"/>", h - b, w - r);
    let ys = nice_step(y1, 5.0);
    let mut v = 0.0;
    while v <= y1 {
        let y = py(v);
        let _ = write!(
            x,
            "<path d=\"M{l} {y:.1}H{}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - r,
            l - 6.0,
            y + 4.0,
            fmt_num(v)
        );
        v += ys;
    }
    match c.x_scale {
        Scale::Linear => {
            let xs = nice_step(x1 - x0, 8.0);
            let mut v = (x0 / xs).ceil() * xs;
            while v <= x1 {
                let _ = write!(
                    x,
                    "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    px(v),
                    h - b + 16.0,
                    fmt_num(v)
                );
                v += xs;
            }
        }
        Scale::PercentileLog => {
            for (q, label) in
                [(0.0, "0%"), (0.9, "90%"), (0.99, "99%"), (0.999, "99.9%"), (0.9999, "99.99%"), (0.99999, "99.999%")]
            {
                let lx = tx(q);
                if lx >= x0 - 1e-9 && lx <= x1 + 1e-9 {
                    let _ = write!(
                        x,
                        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                        px(lx),
                        h - b + 16.0
                    );
                }
            }
        }
    }
    let _ = write!(
        x,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (l + w - r) / 2.0,
        h - 6.0,
        escape(c.x_label)
    );
    let _ = write!(
        x,
        "<text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (t + h - b) / 2.0,
        escape(c.y_label)
    );
    for (i, s) in c.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut d = String::new();
        for (j, &(vx, vy)) in s.points.iter().enumerate() {
            let _ = write!(d, "{}{:.1} {:.1}", if j == 0 { "M" } else { "L" }, px(tx(vx)), py(vy));
        }
        let _ = write!(x, "<path d=\"{d}\" stroke=\"{color}\" stroke-width=\"1.6\" fill=\"none\"/>");
        let ly = t + 14.0 + i as f64 * 16.0;
        // The legend column fits ~26 characters; longer names are cut (whole in the tooltip).
        let short: String = if s.name.chars().count() > 26 {
            s.name.chars().take(25).chain(std::iter::once('…')).collect()
        } else {
            s.name.clone()
        };
        let _ = write!(
            x,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\"><title>{}</title>{}</text>",
            w - r + 10.0,
            ly - 4.0,
            w - r + 26.0,
            ly,
            escape(&s.name),
            escape(&short)
        );
    }
    x.push_str("</svg>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_and_table_are_well_formed() {
        let s = vec![Series { name: "p99 <ms>".into(), points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)] }];
        let svg = line_chart(&Chart {
            title: "t",
            x_label: "s",
            y_label: "ms",
            series: &s,
            shaded: &[(1.0, 1.5, "outage".into())],
            x_scale: Scale::Linear,
        });
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("p99 &lt;ms&gt;") && svg.contains("<rect") && svg.contains("<title>outage</title>"));
        let empty = line_chart(&Chart {
            title: "t",
            x_label: "",
            y_label: "",
            series: &[],
            shaded: &[],
            x_scale: Scale::Linear,
        });
        assert!(empty.contains("no data"));
        let t = table(&["a", "b", "c"], &[vec!["x".into(), "12".into(), "3 routes".into()]]);
        assert!(t.contains("<td class=\"num\">12</td>") && t.contains("<td>3 routes</td>"), "{t}");
        let p = page("T & U", "<p>x</p>");
        assert!(p.contains("<title>T &amp; U</title>") && !p.contains("<script"));
    }
}
