//! The wall clock in seconds, the splitmix mixer, and vendor-looking event ids.

use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub(super) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A ULID-looking event id (26 lowercase base-32 characters starting "01", like the
/// vendor's) for sequence number `seq`: splitmix is a bijection and all its 64 bits are in
/// the first 13 characters after "01", so distinct numbers give distinct ids.
pub fn event_id(seq: u64) -> String {
    let head = splitmix(seq);
    let tail = splitmix(head ^ 0xA5A5_A5A5_A5A5_A5A5);
    let mut s = String::from("01");
    for i in 0..13 {
        s.push(BASE32[((head >> (5 * i)) & 31) as usize] as char);
    }
    for i in 0..11 {
        s.push(BASE32[((tail >> (5 * i)) & 31) as usize] as char);
    }
    s
}
