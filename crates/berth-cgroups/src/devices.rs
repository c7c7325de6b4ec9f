//! Device access rules: validating OCI `linux.resources.devices`, the v1 file syntax, and a model of
//! the v1 devices controller (default + exceptions) that the v2 eBPF filter is generated from.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::Error;
use crate::files::{check_dev_number, invalid};

/// Access bits, with the values of the kernel's `BPF_DEVCG_ACC_*`.
pub(crate) const ACC_MKNOD: u8 = 1;
pub(crate) const ACC_READ: u8 = 2;
pub(crate) const ACC_WRITE: u8 = 4;
pub(crate) const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Device kinds the controller distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevKind {
    /// `a`: every device; a rule of this kind resets the whole list.
    All,
    Block,
    Char,
}

/// One validated rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DevRule {
    pub allow: bool,
    pub kind: DevKind,
    /// `None` is the wildcard `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl DevRule {
    /// Validates an OCI rule: FIFO rules are refused (the controller cannot express them), `u` is a
    /// character device, -1 or absent numbers are wildcards, missing access means `rwm`.
    pub(crate) fn from_oci(rule: &LinuxDeviceCgroup) -> Result<DevRule, Error> {
        let kind = match rule.typ().unwrap_or_default() {
            LinuxDeviceType::A => DevKind::All,
            LinuxDeviceType::B => DevKind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DevKind::Char,
            LinuxDeviceType::P => {
                return Err(invalid(
                    "device rule type",
                    "p",
                    "FIFOs cannot be controlled by the devices cgroup",
                ));
            }
        };
        let number = |what, n: Option<i64>| match n {
            None | Some(-1) => Ok(None),
            Some(n) => check_dev_number(what, n).map(Some),
        };
        let major = number("device rule major", rule.major())?;
        let minor = number("device rule minor", rule.minor())?;
        let access = match rule.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(text) => parse_access(text)?,
        };
        Ok(DevRule {
            allow: rule.allow(),
            kind,
            major,
            minor,
            access,
        })
    }

    /// The line written to v1 `devices.allow` / `devices.deny`, e.g. `c 1:3 rwm` or `a`.
    pub(crate) fn v1_line(&self) -> String {
        let kind = match self.kind {
            DevKind::All => return "a".to_string(),
            DevKind::Block => 'b',
            DevKind::Char => 'c',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{kind} {}:{} {}",
            num(self.major),
            num(self.minor),
            access_string(self.access)
        )
    }
}

/// Parses `rwm` letters into access bits.
fn parse_access(text: &str) -> Result<u8, Error> {
    let mut bits = 0;
    for c in text.chars() {
        let bit = match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(invalid(
                    "device rule access",
                    text,
                    "expected letters from rwm",
                ));
            }
        };
        bits |= bit;
    }
    Ok(bits)
}

fn access_string(bits: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if bits & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// An exception to the default behaviour, for one device or a wildcard range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exception {
    pub kind: DevKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

/// The state of a v1 devices cgroup: a default behaviour and exceptions to it, updated rule by rule
/// exactly as the kernel updates it when rules are written to `devices.allow` / `devices.deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceModel {
    pub default_allow: bool,
    pub exceptions: Vec<Exception>,
}

impl DeviceModel {
    /// A new cgroup under the root: everything allowed, as on v1.
    pub(crate) fn allow_all() -> DeviceModel {
        DeviceModel {
            default_allow: true,
            exceptions: Vec::new(),
        }
    }

    /// Applies one rule as the kernel does.
    pub(crate) fn apply(&mut self, rule: &DevRule) {
        if rule.kind == DevKind::All {
            self.exceptions.clear();
            self.default_allow = rule.allow;
            return;
        }
        let same =
            |e: &Exception| e.kind == rule.kind && e.major == rule.major && e.minor == rule.minor;
        if rule.allow == self.default_allow {
            // The rule agrees with the default: it narrows exceptions for exactly this device.
            for e in self.exceptions.iter_mut().filter(|e| same(e)) {
                e.access &= !rule.access;
            }
            self.exceptions.retain(|e| e.access != 0);
        } else if let Some(e) = self.exceptions.iter_mut().find(|e| same(e)) {
            e.access |= rule.access;
        } else {
            self.exceptions.push(Exception {
                kind: rule.kind,
                major: rule.major,
                minor: rule.minor,
                access: rule.access,
            });
        }
    }

    /// Whether access `access` to a device is permitted (the kernel's matching rules: in deny-by-default
    /// mode an exception must cover the whole request; in allow-by-default mode any overlap denies).
    #[cfg(test)]
    pub(crate) fn permits(&self, kind: DevKind, major: u32, minor: u32, access: u8) -> bool {
        let hit = self.exceptions.iter().any(|e| {
            e.kind == kind
                && e.major.is_none_or(|m| m == major)
                && e.minor.is_none_or(|m| m == minor)
                && if self.default_allow {
                    access & e.access != 0
                } else {
                    access & !e.access == 0
                }
        });
        if self.default_allow { !hit } else { hit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> DevRule {
        DevRule::from_oci(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn v1_lines() {
        assert_eq!(rule(r#"{"allow":false,"access":"rwm"}"#).v1_line(), "a");
        assert_eq!(
            rule(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#).v1_line(),
            "c 1:3 rwm"
        );
        assert_eq!(
            rule(r#"{"allow":true,"type":"b","major":-1,"access":"mr"}"#).v1_line(),
            "b *:* rm"
        );
        assert_eq!(
            rule(r#"{"allow":true,"type":"u","major":5,"minor":1}"#).v1_line(),
            "c 5:1 rwm"
        );
        let bad = |json: &str| DevRule::from_oci(&serde_json::from_str(json).unwrap()).is_err();
        assert!(bad(
            r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"}"#
        ));
        assert!(bad(
            r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"r\nw"}"#
        ));
        assert!(bad(r#"{"allow":true,"type":"p","major":1,"minor":3}"#));
        assert!(bad(r#"{"allow":true,"type":"c","major":-2,"minor":3}"#));
    }

    #[test]
    fn model_follows_kernel_semantics() {
        let mut m = DeviceModel::allow_all();
        m.apply(&rule(r#"{"allow":false,"access":"rwm"}"#));
        m.apply(&rule(
            r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}"#,
        ));
        m.apply(&rule(
            r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"m"}"#,
        ));
        m.apply(&rule(
            r#"{"allow":true,"type":"c","major":136,"access":"rwm"}"#,
        ));
        m.apply(&rule(
            r#"{"allow":false,"type":"c","major":136,"access":"m"}"#,
        ));
        assert!(!m.default_allow);
        assert_eq!(m.exceptions.len(), 2);
        assert!(m.permits(DevKind::Char, 1, 3, ACC_READ | ACC_WRITE | ACC_MKNOD));
        assert!(!m.permits(DevKind::Char, 1, 5, ACC_READ));
        assert!(!m.permits(DevKind::Block, 1, 3, ACC_READ));
        assert!(m.permits(DevKind::Char, 136, 7, ACC_READ | ACC_WRITE));
        assert!(!m.permits(DevKind::Char, 136, 7, ACC_MKNOD));

        let mut m = DeviceModel::allow_all();
        m.apply(&rule(
            r#"{"allow":false,"type":"b","major":8,"minor":0,"access":"w"}"#,
        ));
        assert!(m.permits(DevKind::Block, 8, 0, ACC_READ));
        assert!(!m.permits(DevKind::Block, 8, 0, ACC_READ | ACC_WRITE));
        m.apply(&rule(
            r#"{"allow":true,"type":"b","major":8,"minor":0,"access":"rw"}"#,
        ));
        assert!(m.exceptions.is_empty());
        m.apply(&rule(r#"{"allow":false,"access":"rwm"}"#));
        m.apply(&rule(r#"{"allow":true,"access":"rwm"}"#));
        assert_eq!(m, DeviceModel::allow_all());
    }
}
