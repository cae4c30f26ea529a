//! Wall-clock time as every Edgefleet program reads it (`std` only): milliseconds since the
//! Unix epoch, the unit of every timestamp on the wire. One definition, so a clock before
//! 1970 reads the same (0) everywhere.

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
