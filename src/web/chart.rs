//! The coordinators' chart of calls per day: an SVG drawn on the server, readable without
//! JavaScript, with each bar's figure in its tooltip and a table of the same figures beside it.

use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;
/// Half the width of a day's label (`14/05` at the axis' font size), in SVG units.
const LABEL_HALF: f64 = 18.0;

/// The smallest round step (1, 2, 2.5 or 5 times a power of ten, whole) such that four of
/// them reach `top`.
fn step_for(top: i64) -> i64 {
    let need = (top.max(1) + 3) / 4;
    let mut p = 1i64;
    loop {
        let quarter = if p >= 10 { p / 2 * 5 } else { 5 * p };
        for s in [p, 2 * p, quarter, 5 * p] {
            if s >= need {
                return s;
            }
        }
        p = p.saturating_mul(10);
    }
}

/// Escapes text for SVG.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bars for `(label, count)` points, left to right; `title` names the chart for screen
/// readers.
pub fn bars(title: &str, points: &[(String, i64)]) -> String {
    // Four equal steps of a round size: every grid line is a whole, readable number.
    let max = step_for(points.iter().map(|p| p.1).max().unwrap_or(0)) * 4;
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = points.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.8).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title"><title id="chart-title">{}</title>"#,
        escape(title)
    );
    for i in 0..=4 {
        let value = max * i / 4;
        let y = TOP + plot_h - plot_h * (i as f64) / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{value}</text>"#,
            WIDTH - 8.0,
            LEFT - 6.0,
            y + 4.0
        );
    }
    // A label every few bars, so that they never overlap.
    let every = (points.len() / 12).max(1);
    for (i, (label, count)) in points.iter().enumerate() {
        let h = plot_h * (*count as f64) / (max as f64);
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let y = TOP + plot_h - h;
        let label = escape(label);
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" data-count="{count}"><title>{label}: {count}</title></rect>"#
        );
        if i % every == 0 {
            // Centred under its bar, unless that would cut it at an edge of the drawing.
            let centre = x + bar_w / 2.0;
            let (at, anchor) = if centre + LABEL_HALF > WIDTH {
                (WIDTH - 1.0, "end")
            } else if centre - LABEL_HALF < 0.0 {
                (1.0, "start")
            } else {
                (centre, "middle")
            };
            let _ = write!(
                svg,
                r#"<text class="axis" x="{at:.1}" y="{}" text-anchor="{anchor}">{label}</text>"#,
                HEIGHT - 8.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_day_scaled_to_a_round_maximum() {
        let points = vec![("14/05".to_string(), 50), ("15/05".to_string(), 100)];
        let svg = bars("Calls <per> day", &points);
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert!(svg.contains(r#"data-count="100""#));
        assert!(svg.contains("Calls &lt;per&gt; day"), "{svg}");
        // Grid lines every 25 up to 100: the tallest bar fills the plot.
        for label in [">0<", ">25<", ">50<", ">75<", ">100<"] {
            assert!(svg.contains(label), "{label} in {svg}");
        }
        assert!(svg.contains(&format!(r#"height="{:.1}""#, HEIGHT - TOP - BOTTOM)));
        assert_eq!(step_for(0), 1);
        assert_eq!(step_for(5), 2, "0, 2, 4, 6, 8");
        assert_eq!(step_for(101), 50);
        assert_eq!(step_for(3_400), 1_000);
        assert_eq!(step_for(7_000), 2_000);
    }

    #[test]
    fn the_last_label_is_not_cut_at_the_right_edge() {
        // A quarter: 92 bars, a label every 7; the last one (the 92nd bar) is centred 12
        // units from the edge, too close for its label: it ends at the edge instead.
        let points: Vec<(String, i64)> = (0..92).map(|d| (format!("d{d:02}"), d)).collect();
        let svg = bars("x", &points);
        assert!(
            svg.contains(r#"x="759.0" y="252" text-anchor="end">d91<"#),
            "{svg}"
        );
        assert!(svg.contains(r#"text-anchor="middle">d84<"#), "{svg}");
        assert!(svg.contains(r#"text-anchor="middle">d00<"#), "{svg}");
    }

    #[test]
    fn no_points_still_draws_an_axis() {
        let svg = bars("x", &[]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="bar""#).count(), 0);
    }
}
