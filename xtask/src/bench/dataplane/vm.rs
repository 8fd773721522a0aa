//! The data path in the VM (`cargo xtask vmtest data_path`): ipvlan, which
//! this machine's kernel lacks, next to macvlan, berth's bridge and a bare
//! veth pair in the same stock Debian kernel. The VM is emulated in
//! software (no KVM here), so only the shares of its bare pair mean
//! something; the test prints one `DATAPATH LABEL=BPS` line per subject.

use anyhow::Result;

use crate::bench::{Line, Session, print_table};

/// The label of the VM's reference.
const BARE: &str = "bare veth pair";

/// The `DATAPATH` lines' figures, in their order.
fn figures(lines: &[String]) -> Vec<(String, f64)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("DATAPATH "))
        .filter_map(|l| {
            let (label, bps) = l.rsplit_once('=')?;
            Some((label.to_owned(), bps.trim().parse().ok()?))
        })
        .collect()
}

/// Prints the VM's figures with each one's share of the bare pair, and
/// adds the ipvlan and macvlan lines to the summary; or says why there
/// are none.
pub fn report(run: Result<Vec<String>>, session: &mut Session) {
    let figs = match run {
        Ok(lines) => figures(&lines),
        Err(e) => {
            let why = format!("VM data path: FAILED: {e:#}");
            eprintln!("{why}");
            session.note(why);
            return;
        }
    };
    let Some(bare) = figs.iter().find(|(l, _)| l == BARE).map(|(_, b)| *b) else {
        session.note("VM data path: the VM printed no figure for its bare veth pair");
        return;
    };
    println!("iperf3 TCP, 1 stream, 2 s, in the VM (software emulation: compare shares, not Gbit/s)");
    let body: Vec<Vec<String>> = figs
        .iter()
        .map(|(label, bps)| {
            vec![
                label.clone(),
                format!("{:.2}", bps / 1e9),
                format!("{:.0}%", bps / bare * 100.0),
            ]
        })
        .collect();
    let header = ["subject (VM)", "Gbit/s", "% of the VM's bare pair"].map(String::from);
    print_table(&header, &body);
    for (label, bps) in figs.iter().filter(|(l, _)| l != BARE) {
        session.add(Line::new(
            format!("{label} data path in the VM, 1 stream"),
            format!("{:.0}% of the VM's bare veth pair", bps / bare * 100.0),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datapath_lines_are_read_and_others_skipped() {
        let lines = [
            "CONFORMANCE ipvlan ok".to_owned(),
            "DATAPATH bare veth pair=2000000000".to_owned(),
            "DATAPATH berth ipvlan l2=1500000000.5".to_owned(),
            "DATAPATH broken=".to_owned(),
        ];
        assert_eq!(
            figures(&lines),
            vec![
                ("bare veth pair".to_owned(), 2e9),
                ("berth ipvlan l2".to_owned(), 1_500_000_000.5)
            ]
        );
    }
}
