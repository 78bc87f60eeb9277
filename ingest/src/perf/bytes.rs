//! A bounds-checked little-endian byte cursor.
//!
//! Every read returns `None` past the end instead of panicking, so a truncated or corrupt record
//! can never crash the parser.

/// Reads little-endian integers from a byte slice, tracking the position.
#[derive(Debug, Clone)]
pub struct ByteCursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteCursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        ByteCursor { data, pos: 0 }
    }

    /// The current position from the start of the slice.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the position.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The unread part of the slice.
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    /// Takes `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }

    /// Reads a `u8`.
    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.bytes(2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }

    /// Reads a NUL-terminated string padded to the end of `n` bytes (perf's fixed fields).
    pub fn fixed_str(&mut self, n: usize) -> Option<String> {
        self.bytes(n).map(c_str)
    }

    /// Reads a perf header string: `u32 len` then `len` bytes, NUL-padded.
    pub fn perf_str(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        self.bytes(len).map(c_str)
    }
}

/// The text up to the first NUL, lossily decoded.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Reads a little-endian `u64` at `offset`, if it fits.
pub fn u64_at(data: &[u8], offset: usize) -> Option<u64> {
    let end = offset.checked_add(8)?;
    data.get(offset..end)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// Reads a little-endian `u32` at `offset`, if it fits.
pub fn u32_at(data: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    data.get(offset..end)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}
