//! JSON: a run as `memledger.run/1` (exactly what `run.json` holds), a
//! comparison as `memledger.compare/1`.

use super::Export;
use crate::compare::Comparison;
use crate::run::Run;

/// The schema tag of a comparison in JSON.
pub const COMPARE_SCHEMA: &str = "memledger.compare/1";

/// The JSON format.
pub struct Json;

impl Export for Json {
    fn run(&self, run: &Run) -> String {
        run.to_json()
    }

    fn comparison(&self, comparison: &Comparison) -> String {
        let value = serde_json::json!({
            "schema": COMPARE_SCHEMA,
            "regressions": comparison.regressions(),
            "comparison": comparison,
        });
        // A tree of plain values: serializing cannot fail.
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }
}
