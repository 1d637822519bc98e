//! Prints the path of a built example plugin: `cargo run -p wasmswitch-plugin-artifacts
//! --example path -- ivr-menu-py`. With no argument, lists them all.

fn main() {
    let wanted = std::env::args().nth(1);
    for (name, path) in wasmswitch_plugin_artifacts::ALL {
        match &wanted {
            Some(w) if w == name => {
                println!("{path}");
                return;
            }
            Some(_) => {}
            None => println!("{name:14} {path}"),
        }
    }
    if let Some(w) = wanted {
        eprintln!("no example plugin named {w:?}");
        std::process::exit(1);
    }
}
