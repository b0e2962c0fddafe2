//! Decides who the child runs as and which capabilities it keeps (SPEC
//! "Least privilege"), and which capabilities vinit itself keeps once the
//! app runs. Pure: it reads no file and makes no system call; callers hand
//! it the text of the image's /etc/passwd and /etc/group (a static binary
//! has no NSS) and the capabilities vinit holds.
//!
//! The result, [`ChildPrivileges`], is plain numbers computed before the
//! clone; [`apply`] turns it into the ordered calls the child makes between
//! clone and exec (drop the bounding set, setgroups, setresgid, setresuid,
//! capset, ambient set, no_new_privs) through the [`PrivilegeCalls`] trait,
//! which `sys` implements with raw system calls and the tests with a
//! recorder. Nothing here allocates on the path [`apply`] runs.

/// Capability names, indexed by number (linux/capability.h, up to 40).
const CAPABILITY_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

pub const CAP_CHOWN: u32 = 0;
pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_FOWNER: u32 = 3;
pub const CAP_KILL: u32 = 5;
pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
pub const CAP_SETPCAP: u32 = 8;

/// A set of capabilities as a bit mask (bit N is capability N), the form
/// capget/capset and /proc/PID/status use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    pub fn of(caps: &[u32]) -> CapSet {
        CapSet(caps.iter().fold(0, |mask, cap| mask | 1 << cap))
    }

    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capability numbers in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |cap| self.contains(*cap))
    }

    /// `CAP_A,CAP_B` for messages.
    pub fn names(self) -> String {
        let mut names = String::new();
        for cap in self.iter() {
            if !names.is_empty() {
                names.push(',');
            }
            names.push_str(&capability_name(cap));
        }
        names
    }
}

/// `CAP_NAME` for a capability number (`CAP_41` for one this table does not know).
pub fn capability_name(cap: u32) -> String {
    match CAPABILITY_NAMES.get(cap as usize) {
        Some(name) => format!("CAP_{name}"),
        None => format!("CAP_{cap}"),
    }
}

/// A capability name, with or without `CAP_`, in any case.
pub fn parse_capability(name: &str) -> Result<u32, String> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITY_NAMES
        .iter()
        .position(|known| *known == bare)
        .map(|index| index as u32)
        .ok_or_else(|| {
            format!(
                "unknown capability \"{}\" (e.g. NET_BIND_SERVICE, CAP_CHOWN)",
                name.trim()
            )
        })
}

/// A comma-separated capability list (`NET_BIND_SERVICE,cap_chown`).
pub fn parse_capabilities(list: &str) -> Result<CapSet, String> {
    let mut set = CapSet::EMPTY;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        set.0 |= 1 << parse_capability(name)?;
    }
    Ok(set)
}

/// One line of /etc/passwd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
}

/// One line of /etc/group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupEntry<'a> {
    pub name: &'a str,
    pub gid: u32,
    /// The comma-separated member list as written.
    pub member_list: &'a str,
}

impl<'a> GroupEntry<'a> {
    /// The user names the group lists.
    pub fn members(&self) -> impl Iterator<Item = &'a str> {
        self.member_list
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
    }
}

/// Parses /etc/passwd (`name:password:uid:gid:gecos:home:shell`). Comments,
/// blank lines and malformed lines (too few fields, ids that are not
/// numbers) are skipped, as libc's readers skip them.
pub fn parse_passwd(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    entries(text).filter_map(|mut fields| {
        let name = fields.next().filter(|n| !n.is_empty())?;
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(PasswdEntry { name, uid, gid })
    })
}

/// Parses /etc/group (`name:password:gid:member,member`), skipping what
/// [`parse_passwd`] skips.
pub fn parse_group(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    entries(text).filter_map(|mut fields| {
        let name = fields.next().filter(|n| !n.is_empty())?;
        let gid = fields.nth(1)?.parse().ok()?;
        Some(GroupEntry {
            name,
            gid,
            member_list: fields.next().unwrap_or(""),
        })
    })
}

fn entries(text: &str) -> impl Iterator<Item = std::str::Split<'_, char>> {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':'))
}

/// The ids the child runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The supplementary groups (setgroups), in order, without repeats.
    pub groups: Vec<u32>,
}

/// Resolves `--user NAME|UID[:GROUP|GID]` against the image's /etc/passwd
/// and /etc/group texts (either may be empty when the file is absent):
/// `NAME` (or a listed UID) gets its primary group plus every group that
/// lists it; `NAME:GROUP` gets GROUP only; a UID absent from /etc/passwd
/// runs with the same number as its GID and no supplementary groups.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<Identity, String> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part.is_some_and(str::is_empty) {
        return Err(format!("\"{spec}\" is not NAME|UID[:GROUP|GID]"));
    }
    let numeric_uid = user_part.parse::<u32>().ok();
    let entry = parse_passwd(passwd).find(|u| match numeric_uid {
        Some(uid) => u.uid == uid,
        None => u.name == user_part,
    });
    let (uid, primary_gid) = match (entry, numeric_uid) {
        (Some(user), _) => (user.uid, user.gid),
        (None, Some(uid)) => (uid, uid),
        (None, None) => return Err(format!("no user \"{user_part}\" in /etc/passwd")),
    };
    if let Some(group_part) = group_part {
        let gid = match group_part.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                parse_group(group)
                    .find(|g| g.name == group_part)
                    .ok_or_else(|| format!("no group \"{group_part}\" in /etc/group"))?
                    .gid
            }
        };
        return Ok(Identity {
            uid,
            gid,
            groups: vec![gid],
        });
    }
    let Some(user) = entry else {
        return Ok(Identity {
            uid,
            gid: primary_gid,
            groups: Vec::new(),
        });
    };
    let mut supplementary = vec![primary_gid];
    for listed in parse_group(group).filter(|g| g.members().any(|m| m == user.name)) {
        if !supplementary.contains(&listed.gid) {
            supplementary.push(listed.gid);
        }
    }
    Ok(Identity {
        uid,
        gid: primary_gid,
        groups: supplementary,
    })
}

/// What the user asked for (SPEC defaults already applied by `options`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub identity: Option<Identity>,
    /// `--drop-caps` (or `--keep-caps`): empty every set but `keep`.
    pub drop_caps: bool,
    pub keep: CapSet,
    pub no_new_privs: bool,
}

impl Request {
    /// True when the child runs with anything other than vinit's own privileges.
    pub fn restricts(&self) -> bool {
        self.identity.is_some() || self.drop_caps || self.no_new_privs
    }
}

/// What vinit holds, read before the clone (capget and its own ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub uid: u32,
    pub gid: u32,
    pub effective: CapSet,
    pub permitted: CapSet,
}

/// The child's privilege changes, as numbers: what [`apply`] does between
/// clone and exec. Built by [`ChildPrivileges::decide`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildPrivileges {
    /// Drop from the bounding set every capability not in `keep`.
    pub drop_bounding: bool,
    pub keep: CapSet,
    pub identity: Option<Identity>,
    /// Set the effective, permitted and inheritable sets to `keep` and the
    /// ambient set to `ambient`.
    pub set_caps: bool,
    pub ambient: CapSet,
    pub no_new_privs: bool,
}

impl ChildPrivileges {
    /// Checks the request against what vinit holds (a configuration error
    /// when vinit cannot grant it) and decides the changes.
    pub fn decide(request: &Request, holder: &Holder) -> Result<ChildPrivileges, String> {
        if let Some(identity) = &request.identity {
            let changes_ids = identity.uid != holder.uid || identity.gid != holder.gid;
            let can = holder.effective.contains(CAP_SETUID) && holder.effective.contains(CAP_SETGID);
            if !can && (changes_ids || !identity.groups.is_empty()) {
                return Err(format!(
                    "--user: vinit runs as uid {} without CAP_SETUID and CAP_SETGID, so it cannot \
                     switch to uid {} gid {} (start vinit as root and let it drop privileges)",
                    holder.uid, identity.uid, identity.gid
                ));
            }
        }
        let missing = CapSet(request.keep.0 & !holder.permitted.0);
        if !missing.is_empty() {
            return Err(format!(
                "--keep-caps: vinit does not hold {} itself, so the app cannot keep it",
                missing.names()
            ));
        }
        let non_root = request
            .identity
            .as_ref()
            .map_or(holder.uid != 0, |id| id.uid != 0);
        Ok(ChildPrivileges {
            // Without CAP_SETPCAP the bounding set cannot shrink; no_new_privs
            // (on with --drop-caps) then keeps the child from using it.
            drop_bounding: request.drop_caps && holder.effective.contains(CAP_SETPCAP),
            keep: request.keep,
            identity: request.identity.clone(),
            set_caps: request.drop_caps,
            ambient: if request.drop_caps && non_root {
                request.keep
            } else {
                CapSet::EMPTY
            },
            no_new_privs: request.no_new_privs,
        })
    }

    /// True when [`apply`] has nothing to do.
    pub fn is_noop(&self) -> bool {
        *self == ChildPrivileges::default()
    }
}

/// Which step of [`apply`] failed (reported by the child to the parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Step {
    DropBounding = 1,
    SetGroups,
    SetGid,
    KeepCaps,
    SetUid,
    SetCaps,
    Ambient,
    NoNewPrivs,
}

impl Step {
    pub fn from_code(code: i32) -> Option<Step> {
        const ALL: [Step; 8] = [
            Step::DropBounding,
            Step::SetGroups,
            Step::SetGid,
            Step::KeepCaps,
            Step::SetUid,
            Step::SetCaps,
            Step::Ambient,
            Step::NoNewPrivs,
        ];
        ALL.into_iter().find(|step| *step as i32 == code)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::DropBounding => "the child cannot drop its bounding capability set",
            Step::SetGroups => "the child cannot set its groups (setgroups)",
            Step::SetGid => "the child cannot set its group id (setresgid)",
            Step::KeepCaps => "the child cannot keep capabilities across setuid",
            Step::SetUid => "the child cannot set its user id (setresuid)",
            Step::SetCaps => "the child cannot set its capabilities (capset)",
            Step::Ambient => "the child cannot set its ambient capabilities",
            Step::NoNewPrivs => "the child cannot set no_new_privs",
        }
    }
}

/// The system calls [`apply`] makes; each returns the errno on failure.
/// `sys` implements it with raw syscalls safe between clone and exec.
pub trait PrivilegeCalls {
    /// Drops `cap` from the bounding set if it is there; capabilities past
    /// the kernel's last one end the loop (`Ok(false)`).
    fn drop_bounding(&mut self, cap: u32) -> Result<bool, i32>;
    fn set_groups(&mut self, groups: &[u32]) -> Result<(), i32>;
    fn set_gid(&mut self, gid: u32) -> Result<(), i32>;
    fn keep_caps_on_setuid(&mut self) -> Result<(), i32>;
    fn set_uid(&mut self, uid: u32) -> Result<(), i32>;
    fn set_caps(&mut self, effective: CapSet, permitted: CapSet, inheritable: CapSet) -> Result<(), i32>;
    fn clear_ambient(&mut self) -> Result<(), i32>;
    fn raise_ambient(&mut self, cap: u32) -> Result<(), i32>;
    fn no_new_privs(&mut self) -> Result<(), i32>;
}

/// Makes the changes in SPEC's order: bounding set, setgroups, setresgid,
/// setresuid, capset, ambient set, no_new_privs. Allocates nothing.
pub fn apply(privileges: &ChildPrivileges, calls: &mut impl PrivilegeCalls) -> Result<(), (Step, i32)> {
    let step = |step: Step| move |errno: i32| (step, errno);
    if privileges.drop_bounding {
        for cap in 0..64 {
            if privileges.keep.contains(cap) {
                continue;
            }
            if !calls.drop_bounding(cap).map_err(step(Step::DropBounding))? {
                break;
            }
        }
    }
    if let Some(identity) = &privileges.identity {
        calls
            .set_groups(&identity.groups)
            .map_err(step(Step::SetGroups))?;
        calls.set_gid(identity.gid).map_err(step(Step::SetGid))?;
        if privileges.set_caps && !privileges.keep.is_empty() {
            calls.keep_caps_on_setuid().map_err(step(Step::KeepCaps))?;
        }
        calls.set_uid(identity.uid).map_err(step(Step::SetUid))?;
    }
    if privileges.set_caps {
        let keep = privileges.keep;
        calls.set_caps(keep, keep, keep).map_err(step(Step::SetCaps))?;
        calls.clear_ambient().map_err(step(Step::Ambient))?;
        for cap in privileges.ambient.iter() {
            calls.raise_ambient(cap).map_err(step(Step::Ambient))?;
        }
    }
    if privileges.no_new_privs {
        calls.no_new_privs().map_err(step(Step::NoNewPrivs))?;
    }
    Ok(())
}

/// The capabilities vinit keeps for its running life once the app runs
/// with reduced privileges: CAP_KILL to signal an app of another user; when
/// it renders files, CAP_CHOWN, CAP_FOWNER and CAP_DAC_OVERRIDE to
/// re-render them owned by the app's user; when it may start the app again
/// (`respawns`, a restart on change), what that start needs: CAP_SETUID and
/// CAP_SETGID for `--user`, CAP_SETPCAP for the bounding set, and the kept
/// capabilities (vinit can hand on only what it holds). Never more than it holds.
pub fn running_life_caps(renders_files: bool, respawns: Option<&ChildPrivileges>, held: CapSet) -> CapSet {
    let mut keep = CapSet::of(&[CAP_KILL]);
    if renders_files {
        keep.0 |= CapSet::of(&[CAP_CHOWN, CAP_FOWNER, CAP_DAC_OVERRIDE]).0;
    }
    if let Some(child) = respawns {
        if child.identity.is_some() {
            keep.0 |= CapSet::of(&[CAP_SETUID, CAP_SETGID]).0;
        }
        if child.drop_bounding {
            keep.0 |= CapSet::of(&[CAP_SETPCAP]).0;
        }
        keep.0 |= child.keep.0;
    }
    CapSet(keep.0 & held.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment

daemon:x:1:1::/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App,,,:/home/app:/bin/sh
broken:x:notanumber:1::/:/bin/sh
short:x:5
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
    const GROUP: &str = "\
root:x:0:
daemon:x:1:app
app:x:1000:
audio:x:29:pulse, app
video:x:44:app
staff:x:50
nogroup:x:65534:
";

    #[test]
    fn passwd_and_group_skip_what_libc_skips() {
        let users: Vec<_> = parse_passwd(PASSWD).collect();
        let names: Vec<_> = users.iter().map(|u| u.name).collect();
        assert_eq!(names, ["root", "daemon", "app", "nobody"]);
        assert_eq!(
            users[2],
            PasswdEntry {
                name: "app",
                uid: 1000,
                gid: 1000
            }
        );
        let groups: Vec<_> = parse_group(GROUP).collect();
        assert_eq!(groups[3].members().collect::<Vec<_>>(), ["pulse", "app"]);
        assert!(groups
            .iter()
            .any(|g| g.name == "staff" && g.members().next().is_none()));
        assert_eq!(parse_passwd("").count(), 0);
        assert_eq!(parse_group("::::\n:x:1:\n").count(), 0);
    }

    #[test]
    fn a_name_gets_its_primary_group_and_every_group_listing_it() {
        let id = resolve_user("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 1, 29, 44]
            }
        );
        let by_uid = resolve_user("1000", PASSWD, GROUP).unwrap();
        assert_eq!(by_uid, id, "a UID listed in /etc/passwd is the same user");
    }

    #[test]
    fn name_colon_group_gets_that_group_only() {
        let id = resolve_user("app:video", PASSWD, GROUP).unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 1000,
                gid: 44,
                groups: vec![44]
            }
        );
        let id = resolve_user("65534:65534", PASSWD, GROUP).unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 65534,
                gid: 65534,
                groups: vec![65534]
            }
        );
        let id = resolve_user("4242:7", "", "").unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 4242,
                gid: 7,
                groups: vec![7]
            }
        );
    }

    #[test]
    fn an_unlisted_uid_uses_its_own_number_as_group_never_zero() {
        let id = resolve_user("4242", PASSWD, GROUP).unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 4242,
                gid: 4242,
                groups: vec![]
            }
        );
    }

    #[test]
    fn missing_names_and_bad_forms_are_errors() {
        assert!(resolve_user("ghost", PASSWD, GROUP)
            .unwrap_err()
            .contains("no user \"ghost\""));
        assert!(resolve_user("app:ghosts", PASSWD, GROUP)
            .unwrap_err()
            .contains("no group \"ghosts\""));
        for bad in ["", ":1", "app:", ":"] {
            assert!(resolve_user(bad, PASSWD, GROUP).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn capability_names_in_any_case_with_or_without_prefix() {
        assert_eq!(parse_capability("NET_BIND_SERVICE"), Ok(10));
        assert_eq!(parse_capability("cap_net_bind_service"), Ok(10));
        assert_eq!(parse_capability("Cap_Chown"), Ok(0));
        assert_eq!(parse_capability("checkpoint_restore"), Ok(40));
        assert!(parse_capability("NET_BIND").unwrap_err().contains("NET_BIND"));
        assert_eq!(
            parse_capabilities("kill, cap_chown,"),
            Ok(CapSet::of(&[CAP_KILL, CAP_CHOWN]))
        );
        assert_eq!(capability_name(10), "CAP_NET_BIND_SERVICE");
        assert_eq!(CapSet::of(&[5, 0]).names(), "CAP_CHOWN,CAP_KILL");
    }

    fn root() -> Holder {
        let all = CapSet((1 << 41) - 1);
        Holder {
            uid: 0,
            gid: 0,
            effective: all,
            permitted: all,
        }
    }

    fn unprivileged() -> Holder {
        Holder {
            uid: 1000,
            gid: 1000,
            effective: CapSet::EMPTY,
            permitted: CapSet::EMPTY,
        }
    }

    /// Records the calls, failing the one named `fail_on`.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        last_cap: u32,
        fail_on: Option<&'static str>,
    }

    impl Recorder {
        fn call(&mut self, name: &'static str, detail: String) -> Result<(), i32> {
            if self.fail_on == Some(name) {
                return Err(libc::EPERM);
            }
            self.calls.push(format!("{name}{detail}"));
            Ok(())
        }
    }

    impl PrivilegeCalls for Recorder {
        fn drop_bounding(&mut self, cap: u32) -> Result<bool, i32> {
            if cap > self.last_cap {
                return Ok(false);
            }
            self.call("bounding", format!(" -{cap}")).map(|()| true)
        }
        fn set_groups(&mut self, groups: &[u32]) -> Result<(), i32> {
            self.call("setgroups", format!(" {groups:?}"))
        }
        fn set_gid(&mut self, gid: u32) -> Result<(), i32> {
            self.call("setresgid", format!(" {gid}"))
        }
        fn keep_caps_on_setuid(&mut self) -> Result<(), i32> {
            self.call("keepcaps", String::new())
        }
        fn set_uid(&mut self, uid: u32) -> Result<(), i32> {
            self.call("setresuid", format!(" {uid}"))
        }
        fn set_caps(&mut self, e: CapSet, p: CapSet, i: CapSet) -> Result<(), i32> {
            self.call("capset", format!(" {:x}/{:x}/{:x}", e.0, p.0, i.0))
        }
        fn clear_ambient(&mut self) -> Result<(), i32> {
            self.call("ambient-clear", String::new())
        }
        fn raise_ambient(&mut self, cap: u32) -> Result<(), i32> {
            self.call("ambient", format!(" +{cap}"))
        }
        fn no_new_privs(&mut self) -> Result<(), i32> {
            self.call("nnp", String::new())
        }
    }

    fn run(request: &Request, holder: &Holder) -> Vec<String> {
        let privileges = ChildPrivileges::decide(request, holder).unwrap();
        let mut recorder = Recorder {
            last_cap: 2,
            ..Recorder::default()
        };
        apply(&privileges, &mut recorder).unwrap();
        recorder.calls
    }

    #[test]
    fn user_with_kept_capability_in_spec_order() {
        let request = Request {
            identity: Some(Identity {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 29],
            }),
            drop_caps: true,
            keep: CapSet::of(&[1]),
            no_new_privs: true,
        };
        assert_eq!(
            run(&request, &root()),
            [
                "bounding -0",
                "bounding -2",
                "setgroups [1000, 29]",
                "setresgid 1000",
                "keepcaps",
                "setresuid 1000",
                "capset 2/2/2",
                "ambient-clear",
                "ambient +1",
                "nnp"
            ]
        );
    }

    #[test]
    fn root_dropping_caps_keeps_uid_and_no_ambient() {
        let request = Request {
            drop_caps: true,
            keep: CapSet::of(&[1]),
            no_new_privs: true,
            ..Request::default()
        };
        assert_eq!(
            run(&request, &root()),
            [
                "bounding -0",
                "bounding -2",
                "capset 2/2/2",
                "ambient-clear",
                "nnp"
            ]
        );
        assert!(ChildPrivileges::decide(&Request::default(), &root())
            .unwrap()
            .is_noop());
    }

    #[test]
    fn an_unprivileged_vinit_cannot_grant_what_it_lacks() {
        let request = Request {
            identity: Some(Identity {
                uid: 0,
                gid: 0,
                groups: vec![],
            }),
            ..Request::default()
        };
        let err = ChildPrivileges::decide(&request, &unprivileged()).unwrap_err();
        assert!(err.contains("--user"), "{err}");
        let same = Request {
            identity: Some(Identity {
                uid: 1000,
                gid: 1000,
                groups: vec![],
            }),
            ..Request::default()
        };
        assert!(ChildPrivileges::decide(&same, &unprivileged()).is_ok());
        let keep = Request {
            drop_caps: true,
            keep: CapSet::of(&[10]),
            ..Request::default()
        };
        let err = ChildPrivileges::decide(&keep, &unprivileged()).unwrap_err();
        assert!(err.contains("CAP_NET_BIND_SERVICE"), "{err}");
        // No CAP_SETPCAP: the bounding set stays, every other set is emptied.
        let drop = Request {
            drop_caps: true,
            no_new_privs: true,
            ..Request::default()
        };
        assert_eq!(
            run(&drop, &unprivileged()),
            ["capset 0/0/0", "ambient-clear", "nnp"]
        );
    }

    #[test]
    fn a_failing_step_is_named_and_stops_the_rest() {
        let request = Request {
            identity: Some(Identity {
                uid: 1,
                gid: 1,
                groups: vec![],
            }),
            drop_caps: true,
            ..Request::default()
        };
        let privileges = ChildPrivileges::decide(&request, &root()).unwrap();
        let mut recorder = Recorder {
            last_cap: 0,
            fail_on: Some("setresuid"),
            ..Recorder::default()
        };
        assert_eq!(
            apply(&privileges, &mut recorder),
            Err((Step::SetUid, libc::EPERM))
        );
        assert_eq!(recorder.calls, ["bounding -0", "setgroups []", "setresgid 1"]);
        assert_eq!(Step::from_code(Step::SetUid as i32), Some(Step::SetUid));
        assert_eq!(Step::from_code(0), None);
    }

    #[test]
    fn vinit_keeps_kill_and_what_re_rendering_and_restarts_need() {
        let all = root().permitted;
        assert_eq!(running_life_caps(false, None, all), CapSet::of(&[CAP_KILL]));
        assert_eq!(
            running_life_caps(true, None, all),
            CapSet::of(&[CAP_KILL, CAP_CHOWN, CAP_FOWNER, CAP_DAC_OVERRIDE])
        );
        assert_eq!(
            running_life_caps(true, None, CapSet::of(&[CAP_CHOWN])),
            CapSet::of(&[CAP_CHOWN])
        );
        let request = Request {
            identity: Some(Identity {
                uid: 1,
                gid: 1,
                groups: vec![],
            }),
            drop_caps: true,
            keep: CapSet::of(&[10]),
            no_new_privs: true,
        };
        let child = ChildPrivileges::decide(&request, &root()).unwrap();
        assert_eq!(
            running_life_caps(false, Some(&child), all),
            CapSet::of(&[CAP_KILL, CAP_SETUID, CAP_SETGID, CAP_SETPCAP, 10])
        );
    }
}
