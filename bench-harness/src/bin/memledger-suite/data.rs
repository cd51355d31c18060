//! Deterministic rows, generated in batches so that only what an operator
//! keeps stays in memory.
//!
//! A row is `(key: u64, name: String of 8 to 40 characters, value: u64)`,
//! drawn from an xorshift64* generator: the same seed gives the same rows on
//! every machine, so checksums can be compared across runs and limits.

/// One row: a key, a name of 8 to 40 characters, a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub key: u64,
    pub name: String,
    pub value: u64,
}

impl Row {
    /// What engines typically reserve for a row: the two fixed fields and
    /// the text's length. The `String`'s header (24 bytes), its allocation's
    /// size-class slack and the container's own overhead are left out: the
    /// classic mistake.
    pub fn estimate(&self) -> usize {
        8 + 8 + self.name.len()
    }
}

/// The sum of the estimates of `rows`.
pub fn estimate(rows: &[Row]) -> usize {
    rows.iter().map(Row::estimate).sum()
}

/// xorshift64*: fast, deterministic.
pub fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A stream of `count` rows, handed out batch by batch.
pub struct Rows {
    seed: u64,
    produced: u64,
    count: u64,
    /// Keys drawn from `0..key_space` (all of u64 if `None`).
    key_space: Option<u64>,
    /// Names grow from 8 to 40 characters over the stream instead of being random.
    growing_names: bool,
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

impl Rows {
    /// `count` rows from `seed`.
    pub fn new(seed: u64, count: u64) -> Rows {
        Rows {
            seed: seed | 1,
            produced: 0,
            count,
            key_space: None,
            growing_names: false,
        }
    }

    /// Keys in `0..space`.
    pub fn keys_in(mut self, space: u64) -> Rows {
        self.key_space = Some(space.max(1));
        self
    }

    /// Names that lengthen as the stream goes on.
    pub fn growing_names(mut self) -> Rows {
        self.growing_names = true;
        self
    }

    /// The next batch of at most `n` rows (empty at the end).
    pub fn batch(&mut self, n: usize) -> Vec<Row> {
        let take = (self.count - self.produced).min(n as u64) as usize;
        let mut out = Vec::with_capacity(take);
        for _ in 0..take {
            let r = next(&mut self.seed);
            let key = match self.key_space {
                Some(space) => r % space,
                None => r,
            };
            let len = if self.growing_names {
                8 + (self.produced * 33 / self.count.max(1)) as usize
            } else {
                8 + (r >> 40) as usize % 33
            };
            let mut name = String::with_capacity(len);
            let mut bits = next(&mut self.seed);
            for i in 0..len {
                if i % 10 == 9 {
                    bits = next(&mut self.seed);
                }
                name.push(ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char);
                bits /= ALPHABET.len() as u64;
            }
            out.push(Row {
                key,
                name,
                value: r >> 7,
            });
            self.produced += 1;
        }
        out
    }
}

/// Folds one value into an order-dependent checksum.
pub fn mix(acc: u64, x: u64) -> u64 {
    acc.wrapping_mul(0x100_0000_01B3) ^ x
}

/// An order-dependent checksum: equal only for the same rows in the same
/// order (up to the names' contents, of which only the length counts).
pub fn checksum(acc: u64, row: &Row) -> u64 {
    mix(
        acc,
        row.key ^ row.value.rotate_left(17) ^ row.name.len() as u64,
    )
}
