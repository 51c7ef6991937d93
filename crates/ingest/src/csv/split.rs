//! Cuts a CSV file into chunks that each hold whole records, so that chunks can be parsed in
//! parallel. A cut is only ever made after a record terminator outside a quoted field, found
//! with the same rules as the `csv`/`csv-core` tokenizer (RFC 4180 quoting, `""` escapes, quotes
//! literal inside unquoted fields), so a quoted field holding newlines is never split.
use std::io::Read;

/// Where the tokenizer is within a record (for the header record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the field's end, or the first half of `""`.
    QuoteInQuoted,
}

/// The end (exclusive) of the last complete record in `buf`, which starts at a record start;
/// `None` if `buf` holds no record terminator outside quotes.
///
/// Outside quotes only a quote at a field start (after `,`, a line end, or at the start) opens a
/// quoted field; any other quote is a literal. So the scan jumps from quote to quote with
/// `memchr` and takes the last newline of each stretch outside quotes.
pub(crate) fn last_record_end(buf: &[u8]) -> Option<usize> {
    let mut end = None;
    let mut pos = 0;
    loop {
        // Outside quotes, from `pos`.
        let next_quote = memchr::memchr(b'"', &buf[pos..]).map(|i| pos + i);
        let stretch = &buf[pos..next_quote.unwrap_or(buf.len())];
        if let Some(i) = memchr::memrchr(b'\n', stretch) {
            end = Some(pos + i + 1);
        }
        let Some(q) = next_quote else {
            return end;
        };
        let opens_field = q == 0 || matches!(buf[q - 1], b',' | b'\n' | b'\r');
        if !opens_field {
            pos = q + 1;
            continue;
        }
        // Inside a quoted field: `""` is an escaped quote, a lone quote closes it.
        let mut at = q + 1;
        loop {
            let Some(i) = memchr::memchr(b'"', &buf[at..]) else {
                return end;
            };
            let close = at + i;
            match buf.get(close + 1) {
                Some(b'"') => at = close + 2,
                Some(_) => {
                    pos = close + 1;
                    break;
                }
                // A quote as the last byte: a close or half of `""`; the next read decides.
                None => return end,
            }
        }
    }
}

/// Bytes read per chunk before looking for the last record end (a chunk holding one record
/// longer than this grows until the record ends).
pub(crate) const CHUNK_BYTES: usize = 4 << 20;

/// One run of whole records.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Position in the file's sequence of chunks, from 0.
    pub seq: u64,
    /// Line number of the chunk's first byte (the header is line 1).
    pub first_line: u64,
    /// Newlines in the chunk: a bound on its records (the last may lack one).
    pub newlines: u64,
    pub bytes: Vec<u8>,
}

/// Reads `input` and yields chunks of whole records, skipping the header record.
#[derive(Debug)]
pub(crate) struct Splitter<R> {
    input: R,
    /// Bytes read but not yet handed out (the start of an incomplete record).
    carry: Vec<u8>,
    next_seq: u64,
    next_line: u64,
    header_skipped: bool,
    eof: bool,
    chunk_bytes: usize,
}

impl<R: Read> Splitter<R> {
    pub(crate) fn new(input: R, chunk_bytes: usize) -> Self {
        Self {
            input,
            carry: Vec::new(),
            next_seq: 0,
            next_line: 1,
            header_skipped: false,
            eof: false,
            chunk_bytes: chunk_bytes.max(1),
        }
    }

    /// Reads until `carry` holds at least `want` bytes or the input ends.
    fn fill(&mut self, want: usize) -> std::io::Result<()> {
        while !self.eof && self.carry.len() < want {
            let old = self.carry.len();
            self.carry.resize(want, 0);
            let n = self.input.read(&mut self.carry[old..])?;
            self.carry.truncate(old + n);
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    /// Cuts the first `end` bytes off `carry` as the next run of records.
    fn take(&mut self, end: usize) -> (u64, u64, Vec<u8>) {
        let rest = self.carry.split_off(end);
        let bytes = std::mem::replace(&mut self.carry, rest);
        let first_line = self.next_line;
        let newlines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
        self.next_line += newlines;
        (first_line, newlines, bytes)
    }

    /// The next chunk; `None` at the end of the input.
    pub(crate) fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        let mut want = self.chunk_bytes;
        loop {
            self.fill(want)?;
            let end = match last_record_end(&self.carry) {
                Some(end) if !self.header_skipped => first_record_end(&self.carry).unwrap_or(end),
                Some(end) => end,
                None if self.eof => self.carry.len(),
                // One record longer than the buffer: read more.
                None => {
                    want = self.carry.len() * 2;
                    continue;
                }
            };
            if !self.header_skipped {
                self.header_skipped = true;
                self.take(end);
                want = self.chunk_bytes;
                continue;
            }
            if end == 0 {
                return Ok(None);
            }
            let (first_line, newlines, bytes) = self.take(end);
            let seq = self.next_seq;
            self.next_seq += 1;
            return Ok(Some(Chunk {
                seq,
                first_line,
                newlines,
                bytes,
            }));
        }
    }
}

/// The end of the first record in `buf` (which starts at a record start).
fn first_record_end(buf: &[u8]) -> Option<usize> {
    // Grow the prefix until it holds one complete record; each probe is a prefix scan.
    let mut probe = 256.min(buf.len());
    loop {
        if let Some(end) = first_end_within(&buf[..probe]) {
            return Some(end);
        }
        if probe == buf.len() {
            return None;
        }
        probe = (probe * 4).min(buf.len());
    }
}

/// The end of the first record wholly inside `buf`; empty lines before it are skipped, as the
/// tokenizer skips them.
fn first_end_within(buf: &[u8]) -> Option<usize> {
    let mut state = State::FieldStart;
    let mut record_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' && buf[record_start..i].iter().all(|&c| c == b'\r') {
            record_start = i + 1;
            continue;
        }
        state = match (state, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::FieldStart, b'"') => State::Quoted,
            (_, b',') | (_, b'\r') => State::FieldStart,
            (_, b'\n') => return Some(i + 1),
            _ => State::Unquoted,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunks(input: &[u8], chunk_bytes: usize) -> Vec<Chunk> {
        let mut s = Splitter::new(input, chunk_bytes);
        let mut out = Vec::new();
        while let Some(c) = s.next_chunk().unwrap() {
            out.push(c);
        }
        out
    }

    #[test]
    fn a_quoted_newline_is_never_a_cut() {
        let text = b"a,b\n1,\"x\ny\"\n2,z\n";
        assert_eq!(last_record_end(b"1,\"x\ny\"\n2,"), Some(8));
        for size in 1..text.len() + 2 {
            let parts = chunks(text, size);
            let joined: Vec<u8> = parts.iter().flat_map(|c| c.bytes.clone()).collect();
            assert_eq!(joined, b"1,\"x\ny\"\n2,z\n", "chunk size {size}");
            for c in &parts {
                assert!(c.bytes.ends_with(b"\n"));
                assert_ne!(c.bytes, b"1,\"x\n");
            }
        }
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_literal() {
        // `b"c` is an unquoted field holding a quote: the newline after it ends the record.
        assert_eq!(last_record_end(b"1,b\"c\n2,d"), Some(6));
        // `"x""y"` is a quoted field with an escaped quote.
        assert_eq!(last_record_end(b"\"x\"\"\ny\"\n"), Some(8));
    }

    #[test]
    fn line_numbers_count_the_header_and_quoted_newlines() {
        let parts = chunks(b"h\n\"a\nb\"\nc\nd\n", 4);
        let lines: Vec<u64> = parts.iter().map(|c| c.first_line).collect();
        assert_eq!(lines[0], 2);
        // `"a\nb"` spans lines 2-3, `c` is line 4, `d` line 5.
        assert_eq!(parts.last().unwrap().first_line, 5, "{parts:?}");
    }

    #[test]
    fn empty_lines_before_the_header_are_not_the_header() {
        let parts = chunks(b"\n\r\nh\n1\n", 64);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].bytes, b"1\n");
        assert_eq!(parts[0].first_line, 4);
    }

    #[test]
    fn a_header_only_file_has_no_chunks() {
        assert!(chunks(b"a,b\n", 2).is_empty());
        assert!(chunks(b"a,b", 2).is_empty());
        assert!(chunks(b"", 2).is_empty());
    }

    proptest! {
        /// Whatever the chunk size, the chunks are the records after the header, in order,
        /// each cut where the csv crate sees a record end.
        #[test]
        fn chunks_are_whole_records(
            fields in proptest::collection::vec("[a-c,\"\n\r]{0,6}", 1..40),
            size in 1usize..64,
        ) {
            let mut text = b"h1,h2\n".to_vec();
            for f in &fields {
                text.extend_from_slice(f.as_bytes());
                text.push(b'\n');
            }
            let parts = chunks(&text, size);
            let mut expected = Vec::new();
            let mut rdr = ::csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(&text[..]);
            for r in rdr.byte_records() {
                match r {
                    Ok(r) => expected.push(r),
                    Err(_) => return Ok(()),
                }
            }
            let mut got = Vec::new();
            for c in &parts {
                let mut rdr = ::csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&c.bytes[..]);
                for r in rdr.byte_records() {
                    match r {
                        Ok(r) => got.push(r),
                        Err(_) => return Ok(()),
                    }
                }
            }
            prop_assert_eq!(got, expected);
        }
    }
}
