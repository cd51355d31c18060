//! Asking a shared pool again after a refusal: a short pause that grows
//! with each try, so the other threads get to free what they hold.

use std::thread;
use std::time::Duration;

/// The longest pause between two tries.
const LONGEST_PAUSE: Duration = Duration::from_millis(10);

/// Waits before try number `tries + 1`: a yield for the first few, then
/// 250 µs per try, up to [`LONGEST_PAUSE`].
pub fn pause(tries: u32) {
    if tries < 4 {
        thread::yield_now();
    } else {
        thread::sleep((Duration::from_micros(250) * tries).min(LONGEST_PAUSE));
    }
}
