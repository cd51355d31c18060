//! What every hand-written SVG plot here shares: linear axes with round
//! ticks, and text made safe for XML. The plots themselves are
//! [`super::timeline`] (memory over time, per query) and
//! `sweep::svg` (peaks against the pool limit).

/// A linear axis from 0 with ticks at 1, 2 or 5 × 10^k units.
///
/// Values are in a base unit (bytes, milliseconds); `unit` is how many base
/// units one tick label counts (`MIB` for MiB labels, `1000` for seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axis {
    /// The axis's end in base units (a whole number of ticks, above 0).
    pub max: f64,
    /// Base units between two ticks.
    pub tick: f64,
    /// Base units per label unit.
    unit: f64,
}

impl Axis {
    /// An axis from 0 to at least `max_value` (base units), about six ticks
    /// long, labelled in `unit`s.
    pub fn new(max_value: f64, unit: f64) -> Axis {
        let units = (max_value / unit).max(1e-3);
        let rough = units / 6.0;
        let magnitude = 10f64.powf(rough.log10().floor());
        let tick = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|&t| t >= rough)
            .unwrap_or(10.0 * magnitude);
        let ticks = (units / tick).ceil().max(1.0);
        Axis {
            max: ticks * tick * unit,
            tick: tick * unit,
            unit,
        }
    }

    /// The tick positions, from 0 to [`Axis::max`], in base units.
    pub fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = (self.max / self.tick).round() as u32;
        (0..=n).map(move |i| f64::from(i) * self.tick)
    }

    /// A tick's label in label units, with as many decimals as the tick
    /// step needs.
    pub fn label(&self, value: f64) -> String {
        let step = self.tick / self.unit;
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10()).ceil() as usize
        };
        format!("{:.*}", decimals, value / self.unit)
    }
}

/// Text safe inside an XML (or HTML) element or attribute; control
/// characters become spaces.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// At most `chars` characters of `text`, with `…` when cut.
pub fn shorten(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().count() > chars {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MIB;

    #[test]
    fn axes_end_on_a_round_tick() {
        let axis = Axis::new(100.0 * MIB as f64, MIB as f64);
        assert_eq!(axis.tick, 20.0 * MIB as f64);
        assert_eq!(axis.max, 100.0 * MIB as f64);
        assert_eq!(axis.ticks().count(), 6);
        let small = Axis::new(0.3 * MIB as f64, MIB as f64);
        assert_eq!(small.label(small.tick), "0.05");
        assert!(
            Axis::new(0.0, MIB as f64).max > 0.0,
            "an empty plot still has an axis"
        );
        let seconds = Axis::new(2_300.0, 1000.0);
        assert_eq!(seconds.tick, 500.0);
        assert_eq!(seconds.max, 2_500.0);
        assert_eq!(seconds.label(1_500.0), "1.5");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\"\u{7}"), "a&lt;b &amp; &quot;c&quot; ");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
