//! Host-kernel tests in a fresh network namespace per test (root; XFRM netlink works there,
//! ESP does not). `MIP6_IKE_SKIP_KERNEL_TESTS=1` skips them when not root, saying so.

use std::process::Command as Proc;

/// The addresses the host-kernel tests give the mobile node and home agent (on lo).
pub const HOA: &str = "2001:db8:1::100";
pub const HA: &str = "2001:db8:1::1";
pub const COA1: &str = "2001:db8:2::100";
pub const COA2: &str = "2001:db8:3::100";

use nix::sched::{CloneFlags, unshare};

/// Runs `setup` then `f` on a new thread in a fresh network namespace with lo up; None when
/// the tests are to be skipped (not root and MIP6_IKE_SKIP_KERNEL_TESTS=1). `what` names the
/// tests in the message that explains why they need root.
pub fn in_netns_with<T: Send + 'static>(
    what: &str,
    setup: impl FnOnce() + Send + 'static,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if !nix::unistd::geteuid().is_root() {
        if std::env::var("MIP6_IKE_SKIP_KERNEL_TESTS").as_deref() == Ok("1") {
            eprintln!("skipped: not root (MIP6_IKE_SKIP_KERNEL_TESTS=1)");
            return None;
        }
        panic!(
            "the {what} need root (a network namespace per test); run as root or set MIP6_IKE_SKIP_KERNEL_TESTS=1 to skip them"
        );
    }
    let t = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        ip("link set lo up");
        setup();
        f()
    });
    match t.join() {
        Ok(v) => Some(v),
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// `in_netns_with` whose setup puts `addrs` on lo (/128, nodad).
pub fn in_netns_addrs<T: Send + 'static>(
    what: &str,
    addrs: &'static [&'static str],
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    in_netns_with(
        what,
        move || {
            for addr in addrs {
                ip(&format!("addr add {addr}/128 dev lo nodad"));
            }
        },
        f,
    )
}

/// Runs `ip ARGS` (in the calling thread's netns) and returns its output; panics on failure.
pub fn ip(args: &str) -> String {
    let out = Proc::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
