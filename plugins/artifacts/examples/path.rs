//! Prints the path of a built example plugin: `cargo run -p wasmswitch-plugin-artifacts
//! --example path -- ivr-menu-py`. With no argument, lists them all. With `--copy-to DIR`,
//! copies every example (not the test-only `faulty` one) to `DIR/NAME.wasm`, for
//! `wasmswitch serve --seed-demo DIR`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, dir] if flag == "--copy-to" => {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("cannot create {dir}: {e}");
                return ExitCode::FAILURE;
            }
            for (name, path) in wasmswitch_plugin_artifacts::ALL {
                if *name == "faulty" {
                    continue;
                }
                let to = format!("{dir}/{name}.wasm");
                if let Err(e) = std::fs::copy(path, &to) {
                    eprintln!("cannot copy {path} to {to}: {e}");
                    return ExitCode::FAILURE;
                }
                println!("{to}");
            }
            ExitCode::SUCCESS
        }
        [name] => match wasmswitch_plugin_artifacts::ALL
            .iter()
            .find(|(n, _)| n == name)
        {
            Some((_, path)) => {
                println!("{path}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no example plugin named {name:?}");
                ExitCode::FAILURE
            }
        },
        [] => {
            for (name, path) in wasmswitch_plugin_artifacts::ALL {
                println!("{name:14} {path}");
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: path [NAME | --copy-to DIR]");
            ExitCode::FAILURE
        }
    }
}
