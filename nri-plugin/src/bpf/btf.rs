//! A minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`, and a module's split
//! BTF on top of it): enough to find struct member offsets (through anonymous unions and
//! structs), struct sizes and whether a function exists. aya's own BTF type keeps its type
//! table private, so this small parser stands alone.

use std::{collections::HashMap, path::Path};

use d4c_common::{
    offsets::{FIELDS, OFFSETS_MAGIC, OFF_MAGIC},
    KernelOffsets,
};

use super::error::BpfError;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One struct or union member: name, type id, offset in bits.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Debug, Clone)]
struct Type {
    kind: u32,
    name: String,
    /// size (struct/union/int) or referenced type (ptr/typedef/const/func...).
    size_or_ref: u32,
    /// Member/parameter/value count.
    vlen: usize,
    members: Vec<Member>,
}

/// The parsed type table.
#[derive(Debug)]
pub struct Btf {
    /// Index = type id - `first_id`; in a base BTF id 0 is `void`.
    types: Vec<Type>,
    /// The id of `types[0]`: 0 for a base BTF, the base's type count for a split one.
    first_id: u32,
    /// The string section (a split BTF's offsets continue after its base's).
    strings: Vec<u8>,
    by_name: HashMap<(u32, String), Vec<u32>>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Btf {
    /// Reads and parses the BTF at `path` (normally `/sys/kernel/btf/vmlinux`).
    pub fn from_file(path: &Path) -> Result<Self, BpfError> {
        let data = std::fs::read(path).map_err(|source| BpfError::Io {
            what: "read kernel BTF",
            path: path.into(),
            source,
        })?;
        Self::parse(&data).ok_or_else(|| BpfError::Btf {
            path: path.into(),
            reason: "malformed or big-endian BTF".into(),
        })
    }

    /// Reads a module's split BTF (`/sys/kernel/btf/MODULE`) on top of `base` (vmlinux's).
    pub fn split_from_file(path: &Path, base: &Btf) -> Result<Self, BpfError> {
        let data = std::fs::read(path).map_err(|source| BpfError::Io {
            what: "read module BTF",
            path: path.into(),
            source,
        })?;
        Self::parse_on(&data, Some(base)).ok_or_else(|| BpfError::Btf {
            path: path.into(),
            reason: "malformed or big-endian split BTF".into(),
        })
    }

    /// Parses raw little-endian BTF.
    #[must_use]
    pub fn parse(data: &[u8]) -> Option<Self> {
        Self::parse_on(data, None)
    }

    /// Parses raw little-endian BTF, split on top of `base` when given: its type ids and
    /// string offsets continue after the base's.
    fn parse_on(data: &[u8], base: Option<&Btf>) -> Option<Self> {
        let magic = u16::from_le_bytes([*data.first()?, *data.get(1)?]);
        if magic != BTF_MAGIC {
            return None;
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_raw = data.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
        let strings = data.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
        let base_strings = base.map_or(&[][..], |b| &b.strings[..]);
        let string = |off: u32| -> String {
            let off = off as usize;
            let s = match off.checked_sub(base_strings.len()) {
                None => &base_strings[off..],
                Some(own) => strings.get(own..).unwrap_or_default(),
            };
            let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..end]).into_owned()
        };
        #[allow(clippy::cast_possible_truncation)] // type ids are u32 in BTF
        let first_id = base.map_or(0, |b| b.first_id + b.types.len() as u32);
        let mut types = Vec::new();
        if base.is_none() {
            types.push(Type {
                kind: 0,
                name: String::new(),
                size_or_ref: 0,
                vlen: 0,
                members: vec![],
            });
        }
        let mut at = 0;
        while at + 12 <= types_raw.len() {
            let name_off = u32_at(types_raw, at)?;
            let info = u32_at(types_raw, at + 4)?;
            let size_or_ref = u32_at(types_raw, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + 12 * i;
                        let off = u32_at(types_raw, m + 8)?;
                        members.push(Member {
                            name: string(u32_at(types_raw, m)?),
                            type_id: u32_at(types_raw, m + 4)?,
                            bit_offset: if kind_flag { off & 0x00ff_ffff } else { off },
                        });
                    }
                    12 * vlen
                }
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                _ => 0,
            };
            at += extra;
            types.push(Type {
                kind,
                name: string(name_off),
                size_or_ref,
                vlen,
                members,
            });
        }
        let mut by_name: HashMap<(u32, String), Vec<u32>> = HashMap::new();
        for (i, t) in types.iter().enumerate() {
            if !t.name.is_empty() {
                #[allow(clippy::cast_possible_truncation)] // type ids are u32 in BTF
                by_name
                    .entry((t.kind, t.name.clone()))
                    .or_default()
                    .push(first_id + i as u32);
            }
        }
        Some(Btf {
            types,
            first_id,
            strings: strings.to_vec(),
            by_name,
        })
    }

    /// The type of id `id`, if this BTF holds it (not a split BTF's base types).
    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get(id.checked_sub(self.first_id)? as usize)
    }

    /// The id of the first `struct name` that has members (a name may be declared more
    /// than once).
    fn struct_id(&self, name: &str) -> Option<u32> {
        self.by_name
            .get(&(KIND_STRUCT, name.to_owned()))?
            .iter()
            .copied()
            .find(|&i| self.ty(i).is_some_and(|t| !t.members.is_empty()))
    }

    /// `sizeof(struct name)` in bytes.
    #[must_use]
    pub fn size_of(&self, name: &str) -> Option<u32> {
        Some(self.ty(self.struct_id(name)?)?.size_or_ref)
    }

    /// Follows typedef/const/volatile/restrict/type tags to the underlying type.
    fn strip(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_ref;
                }
                _ => break,
            }
        }
        id
    }

    /// Bit offset of member `name` in the struct/union `id`, looking inside anonymous
    /// members; also the member's type id.
    fn member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        let t = self.ty(self.strip(id))?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return None;
        }
        for m in &t.members {
            if m.name == name {
                return Some((m.bit_offset, m.type_id));
            }
        }
        for m in t.members.iter().filter(|m| m.name.is_empty()) {
            if let Some((off, ty)) = self.member(m.type_id, name) {
                return Some((m.bit_offset + off, ty));
            }
        }
        None
    }

    /// Byte offset of `path` (members joined by `.`) in `struct name`.
    #[must_use]
    pub fn offset_of(&self, name: &str, path: &str) -> Option<u32> {
        let mut id = self.struct_id(name)?;
        let mut bits = 0;
        for part in path.split('.') {
            let (off, ty) = self.member(id, part)?;
            bits += off;
            id = ty;
        }
        (bits % 8 == 0).then_some(bits / 8)
    }

    /// Whether a function `name` exists (e.g. `bpf_lsm_file_truncate`: the hook exists).
    #[must_use]
    pub fn has_func(&self, name: &str) -> bool {
        self.by_name.contains_key(&(KIND_FUNC, name.to_owned()))
    }

    /// The BTF id of function `name` (the first, should there be several).
    #[must_use]
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.by_name
            .get(&(KIND_FUNC, name.to_owned()))?
            .first()
            .copied()
    }

    /// Number of parameters of function `name`, if it exists.
    #[must_use]
    pub fn func_params(&self, name: &str) -> Option<usize> {
        let id = *self.by_name.get(&(KIND_FUNC, name.to_owned()))?.first()?;
        let proto = self.ty(self.ty(id)?.size_or_ref)?;
        (proto.kind == KIND_FUNC_PROTO).then_some(proto.vlen)
    }

    /// Every offset the kernel programs need, or an error naming the first missing field.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BpfError> {
        let mut offsets = KernelOffsets::default();
        for &(idx, st, path) in FIELDS {
            offsets.fields[idx] =
                self.offset_of(st, path)
                    .ok_or_else(|| BpfError::MissingField {
                        field: format!("struct {st}.{path}"),
                    })?;
        }
        offsets.fields[OFF_MAGIC] = OFFSETS_MAGIC;
        Ok(offsets)
    }
}
