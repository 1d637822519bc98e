//! The `wasmswitch plugin` commands as a plugin author runs them: scaffold a project in each
//! language, build it with its own build script, test it with its scenario; inspect; failures.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use wasmswitch_plugin_artifacts as artifacts;

fn wasmswitch(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmswitch"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run wasmswitch")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
}

#[test]
fn plugin_test_runs_a_scenario_against_the_python_build() {
    // The menu's scenario, shared with its Rust and JavaScript builds.
    let scenario = artifacts::scenario("ivr-menu");
    let o = wasmswitch(
        &[
            "plugin",
            "test",
            artifacts::IVR_MENU_PY,
            scenario.to_str().unwrap(),
        ],
        Path::new("."),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("13 passed, 0 failed"), "{out}");
    assert!(
        out.contains("ok    greets and asks for a digit (fuel "),
        "{out}"
    );
}

#[test]
fn a_failing_case_is_reported_and_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.yaml"),
        "cases:\n  - name: wrong on purpose\n    steps:\n      - event: {incoming: {to: '+44'}}\n        expect: [{reject: {code: 404}}]\n",
    )
    .unwrap();
    let o = wasmswitch(
        &["plugin", "test", artifacts::DTMF_TRANSFER, "s.yaml"],
        dir.path(),
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL  wrong on purpose"), "{out}");
    assert!(out.contains("expected [{\"reject\""), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.wasm"), b"hello").unwrap();
    let o = wasmswitch(&["plugin", "inspect", "x.wasm"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not a WebAssembly file"), "{}", text(&o));

    std::fs::write(
        dir.path().join("bad.yaml"),
        "cases: [{name: x, steps: [{dial: {}}]}]",
    )
    .unwrap();
    let o = wasmswitch(
        &["plugin", "test", artifacts::ROUTER, "bad.yaml"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("unknown step kind \"dial\""),
        "{}",
        text(&o)
    );

    let o = wasmswitch(&["plugin", "new", "--lang", "rust", "Bad Name"], dir.path());
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn inspect_lists_the_exports() {
    let o = wasmswitch(
        &["plugin", "inspect", artifacts::IVR_MENU_JS],
        Path::new("."),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("exports: wasmswitch:plugin/call-handler@0.2.0 (world router)"));
}

/// Scaffolds, builds and tests a new project, as the README tells an author to.
fn scaffold_builds_and_passes(lang: &str, world: &str, build: impl FnOnce(&Path) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let o = wasmswitch(
        &["plugin", "new", "--lang", lang, "--world", world, "demo"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let project = dir.path().join("demo");
    let wasm = build(&project);
    let o = wasmswitch(&["plugin", "test", &wasm, "scenario.yaml"], &project);
    let out = text(&o);
    assert!(o.status.success(), "{lang}/{world}: {out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn a_new_rust_plugin_builds_and_passes_its_scenario() {
    // Shared between runs, so the SDK's dependencies compile once.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-rust");
    for world in ["router", "ivr", "messaging"] {
        scaffold_builds_and_passes("rust", world, |p| {
            run(Command::new(env!("CARGO"))
                .args(["build", "--release", "--target", "wasm32-wasip2"])
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("RUSTFLAGS")
                .current_dir(p));
            target
                .join("wasm32-wasip2/release/demo.wasm")
                .display()
                .to_string()
        });
    }
}

#[test]
fn a_new_python_plugin_builds_and_passes_its_scenario() {
    for world in ["router", "ivr", "messaging"] {
        scaffold_builds_and_passes("python", world, |p| {
            run(Command::new("bash").arg("build.sh").current_dir(p));
            p.join("demo.wasm").display().to_string()
        });
    }
}

#[test]
fn a_new_javascript_plugin_builds_and_passes_its_scenario() {
    for world in ["router", "ivr", "messaging"] {
        scaffold_builds_and_passes("js", world, |p| {
            run(Command::new("bash").arg("build.sh").current_dir(p));
            p.join("demo.wasm").display().to_string()
        });
    }
}
