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

/// Splits `"1.5GiB"` into `("1.5", "GiB")`: the number, then what follows it.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

/// Parses a non-negative decimal number (`"12"`, `"1.5"`), refusing signs,
/// exponents and empty text.
fn parse_number(text: &str, what: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Err(format!("`{what}` does not start with a number"));
    }
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| format!("`{what}` is not a number"))
}

/// Parses a size in bytes: a number, optionally fractional, then an optional
/// unit `B`, `K`, `M`, `G`, `T` (also written `Ki`, `KiB`, `KB`, any case).
///
/// Every multiple is a power of 1024. Fractions are rounded down to whole
/// bytes. Errors name the text and why it was refused.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (number, unit) = split_number(trimmed);
    let value = parse_number(number, trimmed)?;
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
    let bytes = value * multiple as f64;
    if bytes > u64::MAX as f64 {
        return Err(format!("`{trimmed}` is too large"));
    }
    Ok(bytes as u64)
}

/// Parses a duration: a number then `ms`, `s`, `m` (or `min`) or `h`; a bare
/// number is seconds. Fractions are allowed (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (number, unit) = split_number(trimmed);
    let value = parse_number(number, trimmed)?;
    let seconds = match unit.to_ascii_lowercase().as_str() {
        "ms" => value / 1000.0,
        "" | "s" | "sec" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown duration unit `{unit}` in `{trimmed}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{trimmed}` is out of range"))
}

/// Parses a percentage (`"5%"`, `"5"`, `"0.5%"`) into a fraction (`0.05`).
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let number = trimmed.strip_suffix('%').unwrap_or(trimmed).trim();
    let value = parse_number(number, trimmed)?;
    Ok(value / 100.0)
}

/// Bytes as MiB with one decimal: `"12.3 MiB"`.
pub fn format_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
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

/// A threshold fraction as a plain percentage: `0.05` → `"5%"`, `0.025` → `"2.5%"`.
pub fn format_percent(fraction: f64) -> String {
    let percent = fraction * 100.0;
    if (percent - percent.round()).abs() < 1e-9 {
        format!("{percent:.0}%")
    } else {
        format!("{percent}%")
    }
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
        assert!(parse_size("-5M").unwrap_err().contains("number"));
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
    }

    #[test]
    fn percentages_become_fractions() {
        assert_eq!(parse_percent("5%"), Ok(0.05));
        assert_eq!(parse_percent("5"), Ok(0.05));
        assert_eq!(parse_percent("12.5 %"), Ok(0.125));
        assert!(parse_percent("five").is_err());
        assert_eq!(format_percent(0.05), "5%");
        assert_eq!(format_percent(0.025), "2.5%");
    }

    #[test]
    fn printing() {
        assert_eq!(format_mib(0), "0.0 MiB");
        assert_eq!(format_mib(100 * KIB), "0.1 MiB");
        assert_eq!(format_mib(12 * MIB + 300 * KIB), "12.3 MiB");
        assert_eq!(format_mib_signed(-(3 * MIB as i64)), "-3.0 MiB");
        assert_eq!(format_mib_change(2 * MIB as i128), "+2.0 MiB");
        assert_eq!(format_mib_change(-(MIB as i128) / 2), "-0.5 MiB");
        assert_eq!(format_wall_ms(999), "999 ms");
        assert_eq!(format_wall_ms(1234), "1.23 s");
        assert_eq!(format_percent_change(0.2), "+20.0%");
        assert_eq!(format_percent_change(-0.031), "-3.1%");
    }
}
