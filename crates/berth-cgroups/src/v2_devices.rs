//! cgroup v2 device rules: an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program generated from the rules,
//! loaded with bpf(2) and attached to the cgroup directory (replacing the one attached before).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::devices::{DevKind, DevRule, DeviceModel};

// bpf(2) commands, program/attach types and flags (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

// Device types in the program's context (BPF_DEVCG_DEV_*).
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

// Opcodes used by the generated program.
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_JEQ_K: u8 = 0x15;
const JMP32_JNE_K: u8 = 0x56; // 32-bit compare: device numbers are u32
const JMP_EXIT: u8 = 0x95;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    /// dst_reg and src_reg, 4 bits each, in the bit-field order of the target.
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | (dst & 0x0f);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0x0f);
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    #[cfg(test)]
    fn dst(&self) -> usize {
        if cfg!(target_endian = "little") {
            (self.regs & 0x0f) as usize
        } else {
            (self.regs >> 4) as usize
        }
    }

    #[cfg(test)]
    fn src(&self) -> usize {
        if cfg!(target_endian = "little") {
            (self.regs >> 4) as usize
        } else {
            (self.regs & 0x0f) as usize
        }
    }
}

/// Builds the filter: registers r2 = device type, r3 = requested access, r4 = major, r5 = minor;
/// then one block per exception that, when it matches, returns the opposite of the default; then
/// the default. Matching follows the v1 kernel: with deny-by-default an exception must cover the
/// whole request, with allow-by-default any overlap with a denied access denies.
pub(crate) fn program(model: &DeviceModel) -> Vec<Insn> {
    let mut p = vec![
        Insn::new(LDX_MEM_W, 2, 1, 0, 0),
        Insn::new(ALU64_AND_K, 2, 0, 0, 0xffff),
        Insn::new(LDX_MEM_W, 3, 1, 0, 0),
        Insn::new(ALU64_RSH_K, 3, 0, 0, 16),
        Insn::new(LDX_MEM_W, 4, 1, 4, 0),
        Insn::new(LDX_MEM_W, 5, 1, 8, 0),
    ];
    let exception_result = i32::from(!model.default_allow);
    for e in &model.exceptions {
        // Jumps are recorded with off = 0 and pointed past the block once its length is known.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        let kind = match e.kind {
            DevKind::Block => DEV_BLOCK,
            DevKind::Char => DEV_CHAR,
            DevKind::All => continue, // never an exception: `a` rules reset the model
        };
        block.push((Insn::new(JMP_JNE_K, 2, 0, 0, kind), true));
        block.push((Insn::new(ALU64_MOV_X, 1, 3, 0, 0), false));
        if model.default_allow {
            block.push((Insn::new(ALU64_AND_K, 1, 0, 0, i32::from(e.access)), false));
            block.push((Insn::new(JMP_JEQ_K, 1, 0, 0, 0), true));
        } else {
            block.push((Insn::new(ALU64_AND_K, 1, 0, 0, !i32::from(e.access)), false));
            block.push((Insn::new(JMP_JNE_K, 1, 0, 0, 0), true));
        }
        if let Some(major) = e.major {
            block.push((Insn::new(JMP32_JNE_K, 4, 0, 0, major as i32), true));
        }
        if let Some(minor) = e.minor {
            block.push((Insn::new(JMP32_JNE_K, 5, 0, 0, minor as i32), true));
        }
        block.push((Insn::new(ALU64_MOV_K, 0, 0, 0, exception_result), false));
        block.push((Insn::new(JMP_EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (i, (mut insn, jumps)) in block.into_iter().enumerate() {
            if jumps {
                // A block has at most 9 instructions, so the offset always fits.
                insn.off = (len - i - 1) as i16;
            }
            p.push(insn);
        }
    }
    p.push(Insn::new(
        ALU64_MOV_K,
        0,
        0,
        0,
        i32::from(model.default_allow),
    ));
    p.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// Replaces the device filter of the cgroup `dir` with one built from `rules` (applied in order
/// on top of "allow everything", as v1 does for a new cgroup).
pub(crate) fn apply(dir: &Path, rules: &[DevRule]) -> Result<(), Error> {
    let mut model = DeviceModel::allow_all();
    for rule in rules {
        model.apply(rule);
    }
    let insns = program(&model);
    let cgroup = File::open(dir).map_err(|source| Error::OpenDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let bpf_err = |command: &'static str, log: String, source: io::Error| Error::Bpf {
        command,
        path: dir.to_path_buf(),
        log,
        source,
    };
    let prog = load(&insns).map_err(|(log, e)| bpf_err("BPF_PROG_LOAD", log, e))?;
    let old = query(cgroup.as_raw_fd()).map_err(|e| bpf_err("BPF_PROG_QUERY", String::new(), e))?;
    attach_cmd(
        BPF_PROG_ATTACH,
        cgroup.as_raw_fd(),
        prog.as_raw_fd(),
        BPF_F_ALLOW_MULTI,
    )
    .map_err(|e| bpf_err("BPF_PROG_ATTACH", String::new(), e))?;
    // Only after the new filter is in place, so the container is never unfiltered.
    for id in old {
        let old_prog = match prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err("BPF_PROG_GET_FD_BY_ID", String::new(), e)),
        };
        match attach_cmd(BPF_PROG_DETACH, cgroup.as_raw_fd(), old_prog.as_raw_fd(), 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("BPF_PROG_DETACH", String::new(), e)),
        }
    }
    Ok(())
}

/// Number of device programs attached directly to the cgroup `dir` (for tests and diagnostics).
pub fn attached_device_programs(dir: &Path) -> Result<usize, Error> {
    let cgroup = File::open(dir).map_err(|source| Error::OpenDir {
        path: dir.to_path_buf(),
        source,
    })?;
    query(cgroup.as_raw_fd())
        .map(|ids| ids.len())
        .map_err(|source| Error::Bpf {
            command: "BPF_PROG_QUERY",
            path: PathBuf::from(dir),
            log: String::new(),
            source,
        })
}

/// `union bpf_attr` as used by BPF_PROG_LOAD (the leading fields; the rest is implicitly zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` for BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `union bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Calls bpf(2) with `attr`.
///
/// Every caller passes one of the `#[repr(C)]` attribute structs above, whose layout matches the
/// leading fields of the kernel's `union bpf_attr` for that command; pointers stored inside it
/// point to buffers that outlive the call.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    let size = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: `attr` is a valid, exclusively borrowed value of `size` bytes for the whole call; the
    // kernel reads at most `size` bytes from it and writes back only output fields of the same
    // struct (see the function comment for the layout and pointer invariants the callers uphold).
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Wraps a file descriptor returned by bpf(2).
fn owned_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: bpf(2) just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads the program; on failure returns the verifier log with the error.
fn load(insns: &[Insn]) -> Result<OwnedFd, (String, io::Error)> {
    const LICENSE: &CStr = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr).and_then(owned_fd) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Load again with the verifier log on, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let second = bpf(BPF_PROG_LOAD, &mut attr).and_then(owned_fd);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            match second {
                Ok(fd) => Ok(fd),
                Err(_) => Err((text, first)),
            }
        }
    }
}

fn attach_cmd(cmd: libc::c_int, cgroup: RawFd, prog: RawFd, flags: u32) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup as u32,
        attach_bpf_fd: prog as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        ..Default::default()
    };
    bpf(cmd, &mut attr).map(drop)
}

/// Ids of the device programs attached directly to the cgroup.
fn query(cgroup: RawFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).and_then(owned_fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{ACC_ALL, ACC_MKNOD, ACC_READ, ACC_WRITE};

    /// Runs the generated program on one request, interpreting exactly the opcodes we emit.
    fn run(p: &[Insn], dev_type: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | dev_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let imm64 = i.imm as i64 as u64;
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(i.src(), 1);
                    r[i.dst()] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU64_AND_K => r[i.dst()] &= imm64,
                ALU64_RSH_K => r[i.dst()] >>= i.imm,
                ALU64_MOV_K => r[i.dst()] = imm64,
                ALU64_MOV_X => r[i.dst()] = r[i.src()],
                JMP_JNE_K if r[i.dst()] != imm64 => pc += i.off as usize,
                JMP_JEQ_K if r[i.dst()] == imm64 => pc += i.off as usize,
                JMP32_JNE_K if r[i.dst()] as u32 != i.imm as u32 => pc += i.off as usize,
                JMP_JNE_K | JMP_JEQ_K | JMP32_JNE_K => {}
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rules(json: &str) -> DeviceModel {
        let list: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        let mut m = DeviceModel::allow_all();
        for r in &list {
            m.apply(&DevRule::from_oci(r).unwrap());
        }
        m
    }

    #[test]
    fn program_agrees_with_model() {
        let models = [
            rules(r#"[]"#),
            rules(
                r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"r"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"b","access":"m"}]"#,
            ),
            rules(
                r#"[{"allow":false,"type":"c","major":1,"minor":5,"access":"w"},
                {"allow":false,"type":"b","major":8,"access":"rwm"}]"#,
            ),
        ];
        for m in &models {
            let p = program(m);
            for (kind, t) in [
                (DevKind::Block, DEV_BLOCK as u32),
                (DevKind::Char, DEV_CHAR as u32),
            ] {
                for (major, minor) in [(1, 3), (1, 5), (136, 0), (8, 1), (0xfff, 0xfffff)] {
                    for access in 1..=ACC_ALL {
                        let expected = m.permits(kind, major, minor, access);
                        let got = run(&p, t, u32::from(access), major, minor) == 1;
                        assert_eq!(
                            got, expected,
                            "{m:?} {kind:?} {major}:{minor} access {access}"
                        );
                    }
                }
            }
        }
        let m = &models[1];
        assert!(m.permits(DevKind::Char, 1, 5, ACC_READ));
        assert!(!m.permits(DevKind::Char, 1, 5, ACC_READ | ACC_WRITE));
        assert!(m.permits(DevKind::Block, 7, 0, ACC_MKNOD));
    }
}
