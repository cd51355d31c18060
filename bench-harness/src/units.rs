//! Human units on the command line and in tables.
//!
//! Parsing: sizes (`512M`, `1.5GiB`, `100K`, `4096`), durations (`30s`,
//! `500ms`, `2m`) and percentages (`5%`). Printing: bytes as MiB with one
//! decimal, durations as `ms` or `s`. JSON never goes through this module:
//! every figure there is an integer in bytes or milliseconds.
//!
//! Every size multiple is a power of 1024, whatever its spelling (`K`, `KB`,
//! `KiB` and `k` all mean 1024 bytes), as in DataFusion's `--memory-limit`
//! and the JVM's `-Xmx`: a memory tool should not make `512M` mean two
//! different things.

use std::time::Duration;

/// 1024 bytes.
pub const KIB: u64 = 1024;
/// 1024 KiB.
pub const MIB: u64 = 1024 * KIB;
/// 1024 MiB.
pub const GIB: u64 = 1024 * MIB;
/// 1024 GiB.
pub const TIB: u64 = 1024 * GIB;

/// The longest integer or fractional part accepted: more digits than this
/// cannot be meant, and the exact arithmetic below stays within `u128`.
const MAX_DIGITS: usize = 20;

/// A non-negative decimal number as written, kept exact: `int` and the
/// `frac_digits` digits after the point as the integer `frac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    int: u128,
    frac: u128,
    frac_digits: u32,
}

impl Decimal {
    /// `self × multiple`, rounded down, with whether anything was dropped.
    fn times(self, multiple: u128) -> (u128, bool) {
        let scale = 10u128.pow(self.frac_digits);
        let frac = self.frac * multiple;
        (self.int * multiple + frac / scale, frac % scale != 0)
    }
}

/// Splits `"1.5GiB"` into `("1.5", "GiB")`: the number, then what follows it.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

/// Parses a non-negative decimal (`"12"`, `"1.5"`, `".5"`, `"5."`) exactly,
/// refusing signs, exponents, `inf`, `NaN` and empty text. `what` is the
/// whole value as the user wrote it, for the message.
fn parse_decimal(number: &str, what: &str) -> Result<Decimal, String> {
    if what.starts_with('-') {
        return Err(format!("`{what}` is negative"));
    }
    if what.starts_with('+') {
        return Err(format!("`{what}`: write the number without a sign"));
    }
    if number.is_empty() {
        return Err(format!("`{what}` does not start with a number"));
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) || (int.is_empty() && frac.is_empty()) {
        return Err(format!("`{what}` is not a number"));
    }
    if int.trim_start_matches('0').len() > MAX_DIGITS {
        return Err(format!("`{what}` is too large"));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > MAX_DIGITS {
        return Err(format!("`{what}` has too many decimals"));
    }
    let digits = |s: &str| -> u128 { s.bytes().fold(0u128, |n, b| n * 10 + u128::from(b - b'0')) };
    Ok(Decimal {
        int: digits(int.trim_start_matches('0')),
        frac: digits(frac),
        frac_digits: frac.len() as u32,
    })
}

/// Parses a size in bytes: a number, optionally fractional, then an optional
/// unit `B`, `K`, `M`, `G`, `T` (also written `Ki`, `KiB`, `KB`, any case).
///
/// Every multiple is a power of 1024. The arithmetic is exact in integers
/// (`9007199254740993` stays itself); a fraction of a byte is rounded down.
/// Negative values and values past `u64::MAX` are refused. Errors name the
/// text and why it was refused.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (number, unit) = split_number(trimmed);
    let value = parse_decimal(number, trimmed)?;
    let multiple = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kb" | "kib" => KIB,
        "m" | "mi" | "mb" | "mib" => MIB,
        "g" | "gi" | "gb" | "gib" => GIB,
        "t" | "ti" | "tb" | "tib" => TIB,
        _ => {
            return Err(format!(
                "unknown size unit `{unit}` in `{trimmed}` (use B, K, M, G or T)"
            ));
        }
    };
    let (bytes, _) = value.times(u128::from(multiple));
    u64::try_from(bytes)
        .map_err(|_| format!("`{trimmed}` is too large (at most {} bytes)", u64::MAX))
}

/// Parses a duration: a number then `ms`, `s`, `m` (or `min`) or `h`; a bare
/// number is seconds. Fractions are allowed (`1.5s`) down to whole
/// milliseconds, the unit every duration is stored in; a finer value and
/// one whose milliseconds do not fit a `u64` are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (number, unit) = split_number(trimmed);
    let value = parse_decimal(number, trimmed)?;
    let unit_ms: u128 = match unit.to_ascii_lowercase().as_str() {
        "ms" => 1,
        "" | "s" | "sec" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "unknown duration unit `{unit}` in `{trimmed}` (use ms, s, m or h)"
            ));
        }
    };
    let (ms, dropped) = value.times(unit_ms);
    if dropped {
        return Err(format!("`{trimmed}` is finer than a millisecond"));
    }
    let ms = u64::try_from(ms).map_err(|_| format!("`{trimmed}` is out of range"))?;
    Ok(Duration::from_millis(ms))
}

/// Parses a `--timeout`: a [duration](parse_duration) of at least 1 ms.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!(
            "a timeout of `{}` would kill every query at once; give a positive duration",
            text.trim()
        ));
    }
    Ok(duration)
}

/// Decimals a percentage may have (`0.000001%`).
const PERCENT_DECIMALS: u32 = 6;
/// The largest percentage accepted.
const PERCENT_MAX: u128 = 1_000_000;

/// Parses a percentage (`"5%"`, `"5"`, `"0.5%"`) into a fraction (`0.05`).
///
/// At most six decimals and at most 1000000%; negative values are refused.
/// The fraction is `millionths of a percent / 10^8`, so that
/// [`format_percent`] gives back text that parses to the same value.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let number = trimmed.strip_suffix('%').unwrap_or(trimmed).trim();
    if number.starts_with('-') {
        return Err(format!(
            "`{trimmed}` is negative; a threshold is a growth of 0% or more"
        ));
    }
    if !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("`{trimmed}` is not a percentage like 5% or 2.5%"));
    }
    let value = parse_decimal(number, trimmed)?;
    if value.frac_digits > PERCENT_DECIMALS {
        return Err(format!(
            "`{trimmed}` has more than {PERCENT_DECIMALS} decimals"
        ));
    }
    if value.int > PERCENT_MAX || (value.int == PERCENT_MAX && value.frac > 0) {
        return Err(format!("`{trimmed}` is above {PERCENT_MAX}%"));
    }
    let (millionths, _) = value.times(10u128.pow(PERCENT_DECIMALS));
    Ok(millionths as f64 / 1e8)
}

/// Parses a `--scale`: a finite number above 0 (`0.1`, `2`), the text kept
/// as given so that it reaches the suite unchanged.
pub fn parse_scale(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let value = parse_decimal(trimmed, trimmed)
        .map_err(|why| format!("{why}; --scale is a number above 0, e.g. 0.1 or 2"))?;
    if value.int == 0 && value.frac == 0 {
        return Err(format!(
            "`{trimmed}`: --scale must be above 0, e.g. 0.1 or 2"
        ));
    }
    Ok(trimmed.to_string())
}

/// Bytes as MiB with one decimal: `"12.3 MiB"`.
pub fn format_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// Bytes as bytes below 1 KiB, KiB below 1 MiB and MiB from there, one
/// decimal: `"24 B"`, `"220.3 KiB"`, `"12.3 MiB"`. For limits, which are
/// often smaller than a MiB and must stay apart in a table.
pub fn format_size(bytes: u64) -> String {
    if bytes < KIB {
        format!("{bytes} B")
    } else if bytes < MIB {
        format!("{:.1} KiB", bytes as f64 / KIB as f64)
    } else {
        format_mib(bytes)
    }
}

/// Signed bytes as MiB with one decimal: `"-12.3 MiB"`, `"4.0 MiB"`.
pub fn format_mib_signed(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// A change in bytes as MiB with an explicit sign: `"+2.0 MiB"`, `"-0.5 MiB"`.
pub fn format_mib_change(bytes: i128) -> String {
    let mib = bytes as f64 / MIB as f64;
    if mib >= 0.0 {
        format!("+{mib:.1} MiB")
    } else {
        format!("{mib:.1} MiB")
    }
}

/// A wall time for a table: `"123 ms"` under a second, `"1.23 s"` above.
pub fn format_wall_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// A fraction as a percentage with one decimal and a sign: `"+20.0%"`.
pub fn format_percent_change(fraction: f64) -> String {
    let percent = fraction * 100.0;
    if percent >= 0.0 {
        format!("+{percent:.1}%")
    } else {
        format!("{percent:.1}%")
    }
}

/// A threshold fraction as a plain percentage: `0.05` → `"5%"`, `0.025` →
/// `"2.5%"`, with at most six decimals (what [`parse_percent`] accepts, so
/// the text parses back to the same fraction).
pub fn format_percent(fraction: f64) -> String {
    let millionths = (fraction * 1e8).round();
    if !(millionths.is_finite() && millionths.abs() < 1e18) {
        return format!("{}%", fraction * 100.0);
    }
    let sign = if millionths < 0.0 { "-" } else { "" };
    let millionths = millionths.abs() as u64;
    let (int, frac) = (millionths / 1_000_000, millionths % 1_000_000);
    if frac == 0 {
        format!("{sign}{int}%")
    } else {
        let decimals = format!("{frac:06}");
        format!("{sign}{int}.{}%", decimals.trim_end_matches('0'))
    }
}

/// Signed bytes of any width as MiB with one decimal (`-12.3 MiB`); a
/// value too large for the table still prints its sign and magnitude.
pub fn format_mib_wide(bytes: i128) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_powers_of_1024_in_every_spelling() {
        assert_eq!(parse_size("512M"), Ok(512 * MIB));
        assert_eq!(parse_size("512m"), Ok(512 * MIB));
        assert_eq!(parse_size("512MB"), Ok(512 * MIB));
        assert_eq!(parse_size("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_size("1.5GiB"), Ok(3 * GIB / 2));
        assert_eq!(parse_size("100K"), Ok(102_400));
        assert_eq!(parse_size("2T"), Ok(2 * TIB));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size(" 1 G "), Ok(GIB));
        assert_eq!(parse_size("0.5K"), Ok(512));
    }

    #[test]
    fn bad_sizes_are_refused_with_the_reason() {
        assert!(parse_size("").unwrap_err().contains("number"));
        assert!(parse_size("M").unwrap_err().contains("number"));
        assert!(parse_size("-5M").unwrap_err().contains("negative"));
        assert_eq!(parse_size("9007199254740993"), Ok(9_007_199_254_740_993));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(
            parse_size("18446744073709551616")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_size("16777216T").unwrap_err().contains("too large"));
        assert!(parse_size("nan").is_err());
        assert!(parse_size("inf").is_err());
        assert!(
            parse_size("5X")
                .unwrap_err()
                .contains("unknown size unit `X`")
        );
        assert!(parse_size("1.2.3M").unwrap_err().contains("not a number"));
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("0.5ms").unwrap_err().contains("finer"));
        assert!(
            parse_duration("10000000000000000000s")
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            parse_duration("18446744073709551615ms"),
            Ok(Duration::from_millis(u64::MAX))
        );
        assert!(parse_timeout("0").unwrap_err().contains("positive"));
        assert!(parse_timeout("-1s").unwrap_err().contains("negative"));
    }

    #[test]
    fn percentages_become_fractions() {
        assert_eq!(parse_percent("5%"), Ok(0.05));
        assert_eq!(parse_percent("5"), Ok(0.05));
        assert_eq!(parse_percent("12.5 %"), Ok(0.125));
        assert!(parse_percent("five").is_err());
        assert!(parse_percent("-5%").unwrap_err().contains("negative"));
        assert!(parse_percent("NaN").is_err());
        assert!(parse_percent("inf%").is_err());
        assert!(parse_percent("1e3%").is_err());
        assert_eq!(format_percent(0.05), "5%");
        assert_eq!(format_percent(0.025), "2.5%");
        assert_eq!(
            format_percent(parse_percent("0.000001%").unwrap()),
            "0.000001%"
        );
        assert_eq!(parse_scale(" 0.5 "), Ok("0.5".to_string()));
        for bad in ["-1", "0", "0.0", "NaN", "inf", "", "1e3"] {
            assert!(parse_scale(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn printing() {
        assert_eq!(format_mib(0), "0.0 MiB");
        assert_eq!(format_mib(100 * KIB), "0.1 MiB");
        assert_eq!(format_mib(12 * MIB + 300 * KIB), "12.3 MiB");
        assert_eq!(format_size(225 * KIB + 512), "225.5 KiB");
        assert_eq!(format_size(MIB), "1.0 MiB");
        assert_eq!(format_size(1), "1 B");
        assert_eq!(format_mib_signed(-(3 * MIB as i64)), "-3.0 MiB");
        assert_eq!(
            format_mib_wide(i128::from(u64::MAX)),
            "17592186044416.0 MiB"
        );
        assert_eq!(format_mib_change(2 * MIB as i128), "+2.0 MiB");
        assert_eq!(format_mib_change(-(MIB as i128) / 2), "-0.5 MiB");
        assert_eq!(format_wall_ms(999), "999 ms");
        assert_eq!(format_wall_ms(1234), "1.23 s");
        assert_eq!(format_percent_change(0.2), "+20.0%");
        assert_eq!(format_percent_change(-0.031), "-3.1%");
    }
}
