//! Attribution modes, chosen at compile time by [`Tracked`](crate::Tracked)'s
//! second type parameter.

/// How a free is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attribution {
    /// A free is charged to the scope and thread that free it. No per-block bytes.
    Counting,
    /// A free is charged back to the scope that allocated the block, whichever
    /// thread or scope frees it. Costs a 4- or 8-byte tag per block.
    Owner,
}

impl Attribution {
    /// `"counting"` or `"owner"`, the word used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Attribution::Counting => "counting",
            Attribution::Owner => "owner",
        }
    }
}

/// A compile-time attribution mode: [`Counting`] or [`Owner`].
pub trait Mode: sealed::Sealed + Send + Sync + 'static {
    /// The mode as a value.
    const ATTRIBUTION: Attribution;
}

/// Counting mode (the default): frees are charged where they happen; no per-block overhead.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counting;

/// Owner mode: each block carries its scope in a small tag (see
/// [`Tracked`](crate::Tracked)), and its free is charged back to that scope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owner;

impl Mode for Counting {
    const ATTRIBUTION: Attribution = Attribution::Counting;
}

impl Mode for Owner {
    const ATTRIBUTION: Attribution = Attribution::Owner;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Counting {}
    impl Sealed for super::Owner {}
}
