//! Builds every example plugin into a component and writes their paths to `artifacts.rs`.
//!
//! Rust plugins: a nested `cargo build --target wasm32-wasip2 --profile plugin` with its own
//! target directory (so it never waits on the outer build's lock). Python and JavaScript: each
//! folder's `build.sh`. A missing tool fails the build with the command that installs it, rather
//! than silently skipping a language.

use std::path::{Path, PathBuf};
use std::process::Command;

const RUST: &[&str] = &[
    "router",
    "ivr-menu",
    "sms-policy",
    "dtmf-transfer",
    "faulty",
    "tour",
];
const SCRIPTED: &[&str] = &["ivr-menu-py", "ivr-menu-js", "tour-py", "tour-js"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let plugins = manifest.parent().expect("plugins/").to_path_buf();
    let root = plugins.parent().expect("repo root").to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("sdk/plugin/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("scripted").display()
    );
    for p in RUST.iter().chain(SCRIPTED) {
        for f in [
            "src",
            "Cargo.toml",
            "app.py",
            "app.js",
            "build.sh",
            "package-lock.json",
        ] {
            let path = plugins.join(p).join(f);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }

    let mut consts = String::new();
    let mut names = Vec::new();

    // The nested build gets its own target dir, next to the outer one when we can find it.
    let target = std::env::var_os("WASMSWITCH_PLUGIN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| out.join("../../../../plugin-target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
            "--locked",
        ])
        .arg("--target-dir")
        .arg(&target)
        // Do not leak the outer build's settings (e.g. RUSTFLAGS for the host) into the guests.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    for p in RUST {
        cmd.args(["-p", p]);
    }
    run(&mut cmd, "rustup target add wasm32-wasip2");
    for p in RUST {
        let file = target
            .join("wasm32-wasip2/plugin")
            .join(format!("{}.wasm", p.replace('-', "_")));
        push(&mut consts, &mut names, p, &file);
    }

    for p in SCRIPTED {
        let file = out.join(format!("{p}.wasm"));
        let script = plugins.join(p).join("build.sh");
        let hint = if p.ends_with("-py") {
            "pip install componentize-py==0.25.1"
        } else {
            "install Node.js 20+ and npm (the build runs `npm ci`)"
        };
        run(Command::new("bash").arg(&script).arg(&file), hint);
        push(&mut consts, &mut names, p, &file);
    }

    let calls: String = names.iter().map(|n| format!("$mac!({n});")).collect();
    consts.push_str(&format!(
        "/// Calls `$mac!(NAME)` for every example plugin constant.\n#[macro_export]\nmacro_rules! foreach_plugin {{ ($mac:ident) => {{ {calls} }}; }}\n"
    ));
    let entries: Vec<String> = names
        .iter()
        .map(|n| format!("(\"{}\", {n})", n.to_lowercase().replace('_', "-")))
        .collect();
    consts.push_str(&format!(
        "/// Every example plugin, by its folder name.\npub const ALL: &[(&str, &str)] = &[{}];\n",
        entries.join(", ")
    ));
    std::fs::write(out.join("artifacts.rs"), consts).expect("write artifacts.rs");
}

fn push(consts: &mut String, names: &mut Vec<String>, plugin: &str, file: &Path) {
    assert!(file.exists(), "{} was not built", file.display());
    let name = plugin.to_uppercase().replace('-', "_");
    consts.push_str(&format!(
        "/// The `{plugin}` example plugin component.\npub const {name}: &str = {:?};\n",
        file.display().to_string()
    ));
    names.push(name);
}

fn run(cmd: &mut Command, hint: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (hint: {hint})"));
    assert!(
        status.success(),
        "{cmd:?} failed with {status}; if a tool is missing: {hint}"
    );
}
