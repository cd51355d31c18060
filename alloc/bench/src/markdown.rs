//! A Markdown table writer: a header, right- or left-aligned columns, rows.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table under construction.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            header: columns.iter().map(|&(h, a)| (h.to_string(), a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are left empty, extra ones dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as Markdown, one line per row, `|` in cells escaped.
    pub fn render(&self) -> String {
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        let mut out = line(self.header.iter().map(|(h, _)| escape(h)).collect());
        out += &line(
            self.header
                .iter()
                .map(|(_, a)| match a {
                    Align::Left => "---".to_string(),
                    Align::Right => "---:".to_string(),
                })
                .collect(),
        );
        for row in &self.rows {
            out += &line(row.iter().map(|c| escape(c)).collect());
        }
        out
    }
}

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_header_alignment_and_rows() {
        let mut t = Table::new(&[("name", Align::Left), ("ns", Align::Right)]);
        t.row(vec!["a|b".into(), "1.0".into()]);
        t.row(vec!["c".into()]);
        assert_eq!(
            t.render(),
            "| name | ns |\n| --- | ---: |\n| a\\|b | 1.0 |\n| c |  |\n"
        );
    }
}
