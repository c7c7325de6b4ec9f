//! `berth-containerd` answers `--help` and `--version` like every Berth binary.

#[test]
fn answers_help_and_version() {
    berth_testkit::assert_help_and_version(
        env!("CARGO_BIN_EXE_berth-containerd").as_ref(),
        "berth-containerd",
    );
}
