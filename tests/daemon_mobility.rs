//! The daemon's part of the mobility features over loopback: leases saved to the lease file and
//! loaded again after a restart, and a reload that adds and removes users without touching other
//! users' SAs.

mod common;

use std::fs;
use std::net::{Ipv6Addr, SocketAddr};

use common::daemon::{
    HA_ID, MN1_POOL_USER, MN1_STATIC_USER, ha_toml, leases, list, mn1_toml, start, stop, tree,
    wait_children, wait_ike_down,
};
use mip6_ike::daemon::{Control, Daemon, SharedKernel};
use mip6_ike::mobility::LeaseState;
use mip6_ike::policy;

fn ha() -> String {
    ha_toml(
        "::1",
        r#"lease_file = "leases.toml"
lease_grace = 600
[pools.dyn]
range = "2001:db8:1::1000-2001:db8:1::10ff"
"#,
    )
}

fn mn_toml(ha: SocketAddr, hoa: &str) -> String {
    mn1_toml(ha, hoa, &format!("home_agent_id = \"{HA_ID}\"\n"))
}

#[tokio::test(flavor = "current_thread")]
async fn leases_are_saved_and_survive_a_restart() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_POOL_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha()).unwrap();
    let file = dir.path().join("leases.toml");
    let mut ha = start(&dir.path().join("ha.toml"));
    fs::write(dir.path().join("mn.toml"), mn_toml(ha.addr, "dynamic")).unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    let got = wait_children(&mut mn.events, 2)
        .await
        .hoa
        .expect("a home address");
    wait_children(&mut ha.events, 2).await;
    assert_eq!(got, "2001:db8:1::1000".parse::<Ipv6Addr>().unwrap());
    let l = leases(&ha.tx).await;
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].address, l[0].state), (got, LeaseState::Bound));
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("2001:db8:1::1000") && text.contains("state = \"bound\""),
        "{text}"
    );
    // No temporary file left next to it.
    assert!(!dir.path().join(".leases.toml.tmp").exists());

    stop(mn).await;
    stop(ha).await;
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("state = \"released\""), "{text}");

    // Restart: the lease is loaded, and the same identity gets the same address back.
    let mut ha = start(&dir.path().join("ha.toml"));
    let l = leases(&ha.tx).await;
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].address, l[0].state), (got, LeaseState::Released));
    fs::write(dir.path().join("mn.toml"), mn_toml(ha.addr, "dynamic")).unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    assert_eq!(wait_children(&mut mn.events, 2).await.hoa, Some(got));
    wait_children(&mut ha.events, 2).await;
    assert_eq!(leases(&ha.tx).await[0].state, LeaseState::Bound);
    stop(mn).await;
    stop(ha).await;

    // A lease file the daemon cannot read stops the start (its addresses may be in use).
    fs::write(&file, "version = 9\n").unwrap();
    let e = Daemon::bind(
        policy::load(dir.path().join("ha.toml")).unwrap(),
        Box::new(SharedKernel::new()),
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("version 9 is not supported"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn reload_adds_and_removes_users_without_touching_other_sas() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha()).unwrap();
    let mut ha = start(&dir.path().join("ha.toml"));
    fs::write(
        dir.path().join("mn.toml"),
        mn_toml(ha.addr, "2001:db8:1::100"),
    )
    .unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    wait_children(&mut mn.events, 2).await;
    wait_children(&mut ha.events, 2).await;
    let before = list(&ha.tx).await;
    assert_eq!(before.len(), 1);

    // Add a user: mn1's SAs are untouched.
    fs::write(
        dir.path().join("users/mn9.toml"),
        "identity = \"fqdn:mn9.example.net\"\npsk = \"another example key 0123456789\"\nhome_addresses = [\"2001:db8:1::900\"]\n",
    )
    .unwrap();
    // A file holding a pre-shared key must be private, as a key file.
    fs::set_permissions(
        dir.path().join("users/mn9.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    ha.tx.send(Control::Reload).await.unwrap();
    assert_eq!(list(&ha.tx).await, before);

    // Remove mn1: its IKE SA is deleted, on both sides.
    fs::remove_file(dir.path().join("users/mn1.toml")).unwrap();
    ha.tx.send(Control::Reload).await.unwrap();
    for (side, events) in [("MN", &mut mn.events), ("HA", &mut ha.events)] {
        wait_ike_down(
            events,
            &format!("{side}: the removed user's IKE SA was not deleted"),
        )
        .await;
    }
    assert!(list(&ha.tx).await.is_empty());
    stop(mn).await;
    stop(ha).await;
}
