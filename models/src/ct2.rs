//! Reader for CTranslate2 `model.bin` files (the format faster-whisper uses).
//!
//! Layout (little-endian): u32 version; if version ≥ 2, a spec name (u16 length + bytes,
//! NUL-padded) and a u32 revision; u32 variable count; per variable: name (u16 length + bytes),
//! u8 rank, rank × u32 dims, u8 dtype, u32 byte count, raw data; if version ≥ 3, u32 alias count
//! and alias/target name pairs. The file ends exactly there.
//!
//! Parsing borrows the input: variables point into the caller's buffer, nothing is copied.
//! Every length is checked against the bytes that remain, so truncated or garbled input gives a
//! [`FormatError`] with the offset, never a panic.

use crate::error::FormatError;

/// Newest format version this reader knows.
pub const MAX_VERSION: u32 = 6;
/// Ranks above this are treated as garbage.
const MAX_RANK: u8 = 8;

/// Element type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::F16 => 4,
            DType::BF16 => 5,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One named tensor; `data` borrows the file's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable<'a> {
    pub name: String,
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    pub fn num_elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// The value of a rank-0 integer variable (how CTranslate2 stores `num_heads` and flags).
    pub fn scalar_int(&self) -> Option<i64> {
        if !self.dims.is_empty() {
            return None;
        }
        let d = self.data;
        match self.dtype {
            DType::I8 => Some(i8::from_le_bytes([*d.first()?]).into()),
            DType::I16 => Some(i16::from_le_bytes(d.try_into().ok()?).into()),
            DType::I32 => Some(i32::from_le_bytes(d.try_into().ok()?).into()),
            _ => None,
        }
    }
}

/// A parsed `model.bin`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ct2Model<'a> {
    pub version: u32,
    /// e.g. `WhisperSpec` (versions ≥ 2).
    pub spec: Option<String>,
    pub revision: Option<u32>,
    pub variables: Vec<Variable<'a>>,
    /// (alias, target) pairs, e.g. `decoder/projection/weight` → `decoder/embeddings/weight`.
    pub aliases: Vec<(String, String)>,
}

impl<'a> Ct2Model<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Self, FormatError> {
        let mut r = Reader { buf, pos: 0 };
        let version = r.u32("version")?;
        if version == 0 || version > MAX_VERSION {
            return Err(FormatError::new(
                0,
                format!(
                    "unsupported model.bin version {version} (this reader knows 1..={MAX_VERSION})"
                ),
            ));
        }
        let (spec, revision) = if version >= 2 {
            (Some(r.string("spec name")?), Some(r.u32("spec revision")?))
        } else {
            (None, None)
        };
        let count = r.u32("variable count")? as usize;
        // Each variable takes at least 2 + 1 + 1 + 4 bytes: a count beyond that is garbage.
        if count > r.remaining() / 8 {
            return Err(r.err(format!(
                "variable count {count} does not fit in the {} bytes left",
                r.remaining()
            )));
        }
        let mut variables = Vec::with_capacity(count);
        for i in 0..count {
            variables.push(r.variable(i)?);
        }
        let mut aliases = Vec::new();
        if version >= 3 {
            let n = r.u32("alias count")? as usize;
            if n > r.remaining() / 4 {
                return Err(r.err(format!("alias count {n} does not fit in the bytes left")));
            }
            for _ in 0..n {
                let alias = r.string("alias name")?;
                let target = r.string("alias target")?;
                aliases.push((alias, target));
            }
        }
        if r.remaining() != 0 {
            return Err(r.err(format!(
                "{} unexpected bytes after the last record",
                r.remaining()
            )));
        }
        Ok(Ct2Model {
            version,
            spec,
            revision,
            variables,
            aliases,
        })
    }

    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Variable<'a>> {
        let target = self
            .aliases
            .iter()
            .find(|(a, _)| a == name)
            .map_or(name, |(_, t)| t.as_str());
        self.variables.iter().find(|v| v.name == target)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn err(&self, message: String) -> FormatError {
        FormatError::new(self.pos, message)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// u16 length + bytes, trailing NULs removed, must be UTF-8.
    fn string(&mut self, what: &str) -> Result<String, FormatError> {
        let n = self.u16(what)? as usize;
        let start = self.pos;
        let b = self.take(n, what)?;
        let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
        std::str::from_utf8(&b[..end])
            .map(str::to_owned)
            .map_err(|_| FormatError::new(start, format!("{what} is not UTF-8")))
    }

    fn variable(&mut self, index: usize) -> Result<Variable<'a>, FormatError> {
        let name = self.string(&format!("name of variable {index}"))?;
        let rank = self.u8(&format!("rank of `{name}`"))?;
        if rank > MAX_RANK {
            return Err(self.err(format!("`{name}` has rank {rank} (at most {MAX_RANK})")));
        }
        let mut dims = Vec::with_capacity(rank.into());
        for _ in 0..rank {
            dims.push(self.u32(&format!("dims of `{name}`"))? as usize);
        }
        let code = self.u8(&format!("dtype of `{name}`"))?;
        let dtype = DType::from_code(code)
            .ok_or_else(|| self.err(format!("`{name}` has unknown dtype code {code}")))?;
        let nbytes = self.u32(&format!("byte count of `{name}`"))? as usize;
        let expected = dims
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.err(format!("`{name}` has absurd dims {dims:?}")))?;
        if nbytes != expected {
            return Err(self.err(format!(
                "`{name}` {dims:?} {dtype:?} should have {expected} bytes, header says {nbytes}"
            )));
        }
        let data = self.take(nbytes, &format!("data of `{name}`"))?;
        Ok(Variable {
            name,
            dims,
            dtype,
            data,
        })
    }
}

/// Writes a `model.bin` (version 6): for building test inputs.
pub fn write(
    spec: &str,
    revision: u32,
    variables: &[(&str, &[usize], DType, &[u8])],
    aliases: &[(&str, &str)],
) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(&b);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&6u32.to_le_bytes());
    string(&mut out, spec);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(variables.len() as u32).to_le_bytes());
    for (name, dims, dtype, data) in variables {
        string(&mut out, name);
        out.push(dims.len() as u8);
        for d in *dims {
            out.extend_from_slice(&(*d as u32).to_le_bytes());
        }
        out.push(dtype.code());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
    for (a, t) in aliases {
        string(&mut out, a);
        string(&mut out, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let w: Vec<u8> = (0u8..12).collect(); // 2×3 f16
        write(
            "WhisperSpec",
            3,
            &[
                ("decoder/num_heads", &[], DType::I16, &6i16.to_le_bytes()),
                ("decoder/embeddings/weight", &[2, 3], DType::F16, &w),
                ("flag", &[], DType::I8, &[1]),
            ],
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        )
    }

    #[test]
    fn parses_hand_built_file() {
        let buf = sample();
        let m = Ct2Model::parse(&buf).unwrap();
        assert_eq!(m.version, 6);
        assert_eq!(m.spec.as_deref(), Some("WhisperSpec"));
        assert_eq!(m.revision, Some(3));
        assert_eq!(m.variables.len(), 3);
        assert_eq!(m.get("decoder/num_heads").unwrap().scalar_int(), Some(6));
        assert_eq!(m.get("flag").unwrap().scalar_int(), Some(1));
        let e = m.get("decoder/embeddings/weight").unwrap();
        assert_eq!(e.dims, vec![2, 3]);
        assert_eq!(e.dtype, DType::F16);
        assert_eq!(e.data, &(0u8..12).collect::<Vec<_>>()[..]);
        assert_eq!(e.scalar_int(), None);
        // The alias resolves to the same variable.
        assert_eq!(m.get("decoder/projection/weight"), Some(e));
        assert!(m.get("nope").is_none());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let buf = sample();
        for n in 0..buf.len() {
            let e = Ct2Model::parse(&buf[..n]);
            assert!(e.is_err(), "prefix of {n} bytes parsed");
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut buf = sample();
        buf.push(0);
        let e = Ct2Model::parse(&buf).unwrap_err();
        assert!(e.message.contains("unexpected bytes"), "{e}");
    }

    #[test]
    fn garbled_headers_are_errors() {
        let base = sample();
        // Version out of range.
        let mut b = base.clone();
        b[0] = 99;
        assert!(Ct2Model::parse(&b).unwrap_err().message.contains("version"));
        // Huge variable count.
        let count_at = 4 + 2 + "WhisperSpec\0".len() + 4;
        let mut b = base.clone();
        b[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Ct2Model::parse(&b).is_err());
        // Unknown dtype in the first variable (name, rank 0, then dtype).
        let first = count_at + 4;
        let dtype_at = first + 2 + "decoder/num_heads\0".len() + 1;
        let mut b = base.clone();
        b[dtype_at] = 42;
        let e = Ct2Model::parse(&b).unwrap_err();
        assert!(e.message.contains("dtype"), "{e}");
        assert_eq!(e.offset, dtype_at + 1);
        // Byte count that disagrees with dims × dtype.
        let mut b = base.clone();
        b[dtype_at + 1] = 7;
        assert!(Ct2Model::parse(&b).unwrap_err().message.contains("bytes"));
        // Name length pointing past the end.
        let mut b = base;
        b[first..first + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(
            Ct2Model::parse(&b)
                .unwrap_err()
                .message
                .contains("truncated")
        );
    }

    #[test]
    fn random_garbage_never_panics() {
        // A small xorshift so the test is deterministic without a rand dependency.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let base = sample();
        for _ in 0..2000 {
            let mut b = base.clone();
            for _ in 0..3 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let i = (s as usize) % b.len();
                b[i] = (s >> 32) as u8;
            }
            let _ = Ct2Model::parse(&b);
        }
    }
}
