//! A minimal ELF64 writer for the synthetic user binaries (QEMU, libc, the
//! guest program): one executable PT_LOAD, a GNU build-id note and a symbol
//! table of function symbols, enough for perf, addr2line-style and `object`
//! based symbolizers to resolve addresses to function names.

use crate::rng::hash_str;

/// Offset of .text in the file and from the load base.
pub(crate) const TEXT_OFFSET: u64 = 0x1000;

/// One function symbol of a generated ELF.
#[derive(Debug, Clone)]
pub(crate) struct ElfFunc {
    pub(crate) name: String,
    /// Virtual address relative to the ELF's link base.
    pub(crate) addr: u64,
    pub(crate) size: u64,
}

/// A generated ELF image and its symbols.
#[derive(Debug, Clone)]
pub(crate) struct ElfImage {
    pub(crate) bytes: Vec<u8>,
    pub(crate) build_id: [u8; 20],
    pub(crate) funcs: Vec<ElfFunc>,
    /// Link base (0 for ET_DYN).
    pub(crate) base: u64,
    pub(crate) text_size: u64,
}

impl ElfImage {
    pub(crate) fn func(&self, name: &str) -> Option<&ElfFunc> {
        self.funcs.iter().find(|f| f.name == name)
    }
}

/// Build-id (20 bytes) derived from a string.
pub(crate) fn build_id_of(key: &str) -> [u8; 20] {
    let mut id = [0u8; 20];
    let mut h = hash_str(key);
    for chunk in id.chunks_mut(8) {
        let b = crate::rng::splitmix64(&mut h).to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    id
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn push16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn push32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn push64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Builds an ELF. `exec` selects ET_EXEC linked at 0x400000 (else ET_DYN at 0).
pub(crate) fn build(key: &str, exec: bool, names: &[&str]) -> ElfImage {
    let base: u64 = if exec { 0x40_0000 } else { 0 };
    let build_id = build_id_of(key);
    let mut funcs = Vec::new();
    let mut addr = base + TEXT_OFFSET;
    for n in names {
        let size = 0x40 + (hash_str(n) % 0x3c0) / 16 * 16;
        funcs.push(ElfFunc {
            name: (*n).to_string(),
            addr,
            size,
        });
        addr += size;
    }
    let text_size = addr - base - TEXT_OFFSET;

    // Layout: ehdr(64) phdrs(2*56) note(36) .. text@0x1000 symtab strtab shstrtab shdrs
    let note_off: u64 = 64 + 2 * 56;
    let mut note = Vec::new();
    push32(&mut note, 4);
    push32(&mut note, 20);
    push32(&mut note, 3); // NT_GNU_BUILD_ID
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(&build_id);
    let note_size = note.len() as u64;

    let mut text = Vec::with_capacity(text_size as usize);
    for f in &funcs {
        // push %rbp; mov %rsp,%rbp; nops ...; pop %rbp; ret
        let mut body = vec![0x90u8; f.size as usize];
        body[0] = 0x55;
        body[1] = 0x48;
        body[2] = 0x89;
        body[3] = 0xe5;
        let n = body.len();
        body[n - 2] = 0x5d;
        body[n - 1] = 0xc3;
        text.extend_from_slice(&body);
    }

    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    for f in &funcs {
        let name_off = strtab.len() as u32;
        strtab.extend_from_slice(f.name.as_bytes());
        strtab.push(0);
        push32(&mut symtab, name_off);
        symtab.push(0x12); // STB_GLOBAL | STT_FUNC
        symtab.push(0);
        push16(&mut symtab, 2); // .text
        push64(&mut symtab, f.addr);
        push64(&mut symtab, f.size);
    }
    let shnames = [
        "",
        ".note.gnu.build-id",
        ".text",
        ".symtab",
        ".strtab",
        ".shstrtab",
    ];
    let mut shstrtab = Vec::new();
    let mut shname_off = Vec::new();
    for n in shnames {
        shname_off.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(n.as_bytes());
        shstrtab.push(0);
    }

    let text_off = TEXT_OFFSET;
    let symtab_off = (text_off + text_size + 7) & !7;
    let strtab_off = symtab_off + symtab.len() as u64;
    let shstrtab_off = strtab_off + strtab.len() as u64;
    let shdr_off = (shstrtab_off + shstrtab.len() as u64 + 7) & !7;

    let mut out = Vec::new();
    // ELF header
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    out.extend_from_slice(&[0u8; 8]);
    push16(&mut out, if exec { 2 } else { 3 });
    push16(&mut out, 62); // EM_X86_64
    push32(&mut out, 1);
    push64(&mut out, base + text_off); // entry
    push64(&mut out, 64); // phoff
    push64(&mut out, shdr_off);
    push32(&mut out, 0);
    push16(&mut out, 64);
    push16(&mut out, 56);
    push16(&mut out, 2);
    push16(&mut out, 64);
    push16(&mut out, shnames.len() as u16);
    push16(&mut out, 5);
    // PT_LOAD (R+X) covering headers, note and text
    push32(&mut out, 1);
    push32(&mut out, 5);
    push64(&mut out, 0);
    push64(&mut out, base);
    push64(&mut out, base);
    push64(&mut out, text_off + text_size);
    push64(&mut out, text_off + text_size);
    push64(&mut out, 0x1000);
    // PT_NOTE
    push32(&mut out, 4);
    push32(&mut out, 4);
    push64(&mut out, note_off);
    push64(&mut out, base + note_off);
    push64(&mut out, base + note_off);
    push64(&mut out, note_size);
    push64(&mut out, note_size);
    push64(&mut out, 4);
    out.extend_from_slice(&note);
    out.resize(text_off as usize, 0);
    out.extend_from_slice(&text);
    out.resize(symtab_off as usize, 0);
    out.extend_from_slice(&symtab);
    out.extend_from_slice(&strtab);
    out.extend_from_slice(&shstrtab);
    out.resize(shdr_off as usize, 0);

    #[allow(clippy::too_many_arguments)]
    fn shdr(
        out: &mut Vec<u8>,
        name: u32,
        ty: u32,
        flags: u64,
        addr: u64,
        off: u64,
        size: u64,
        link: u32,
        info: u32,
        align: u64,
        entsize: u64,
    ) {
        push32(out, name);
        push32(out, ty);
        push64(out, flags);
        push64(out, addr);
        push64(out, off);
        push64(out, size);
        push32(out, link);
        push32(out, info);
        push64(out, align);
        push64(out, entsize);
    }
    shdr(&mut out, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    shdr(
        &mut out,
        shname_off[1],
        7, // SHT_NOTE
        2, // SHF_ALLOC
        base + note_off,
        note_off,
        note_size,
        0,
        0,
        4,
        0,
    );
    shdr(
        &mut out,
        shname_off[2],
        1, // SHT_PROGBITS
        6, // SHF_ALLOC | SHF_EXECINSTR
        base + text_off,
        text_off,
        text_size,
        0,
        0,
        16,
        0,
    );
    shdr(
        &mut out,
        shname_off[3],
        2, // SHT_SYMTAB
        0,
        0,
        symtab_off,
        symtab.len() as u64,
        4,
        1,
        8,
        24,
    );
    shdr(
        &mut out,
        shname_off[4],
        3,
        0,
        0,
        strtab_off,
        strtab.len() as u64,
        0,
        0,
        1,
        0,
    );
    shdr(
        &mut out,
        shname_off[5],
        3,
        0,
        0,
        shstrtab_off,
        shstrtab.len() as u64,
        0,
        0,
        1,
        0,
    );
    ElfImage {
        bytes: out,
        build_id,
        funcs,
        base,
        text_size,
    }
}
