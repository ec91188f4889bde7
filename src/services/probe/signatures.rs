//! Signatures in a content's first bytes that `infer` does not know or gets wrong.

/// Whether `head` looks like UTF-8 text: valid UTF-8 (a character cut off at the end of the
/// head allowed), no NUL.
pub fn looks_like_text(head: &[u8], whole: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => !whole && e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// Whether `head` starts with a bare MPEG-audio or ADTS frame sync rather than a container's
/// signature: two bytes, which about one binary file in twenty thousand starts with by chance.
pub fn bare_frame_sync(head: &[u8]) -> bool {
    head.first() == Some(&0xFF) && head.get(1).is_some_and(|b| b & 0xE0 == 0xE0)
}

/// Whether `head` is UTF-16 text with a byte-order mark (what Excel and Windows tools write):
/// it decodes without unpaired surrogates and holds no control character but whitespace. A
/// head cut off in the middle of a pair or a character is allowed.
pub fn looks_like_utf16_text(head: &[u8]) -> bool {
    let little = match head.get(..2) {
        Some([0xFF, 0xFE]) => true,
        Some([0xFE, 0xFF]) => false,
        _ => return false,
    };
    let units = head[2..].chunks_exact(2).map(|pair| {
        let pair = [pair[0], pair[1]];
        if little {
            u16::from_le_bytes(pair)
        } else {
            u16::from_be_bytes(pair)
        }
    });
    let mut decoded = char::decode_utf16(units).peekable();
    let mut any = false;
    while let Some(unit) = decoded.next() {
        match unit {
            Ok(c) if c.is_control() && !c.is_whitespace() => return false,
            Ok(_) => any = true,
            // A high surrogate whose pair the head cut off.
            Err(_) if decoded.peek().is_none() => {}
            Err(_) => return false,
        }
    }
    any
}

/// Whether `head` is an MPEG transport stream (`.ts`, `.m2ts` without its 4-byte timecodes):
/// 188-byte packets, each starting with the sync byte 0x47, at least four of them.
pub fn is_mpeg_ts(head: &[u8]) -> bool {
    const PACKET: usize = 188;
    let packets = (head.len() / PACKET).min(16);
    packets >= 4 && (0..packets).all(|i| head[i * PACKET] == 0x47)
}
