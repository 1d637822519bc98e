//! The `wasmswitch` binary: the switch itself and the tools plugin authors use.

mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use wasmswitch::plugins::harness::{self, Harness};
use wasmswitch::plugins::scenario::Scenario;

#[derive(Parser)]
#[command(
    name = "wasmswitch",
    version,
    about = "A programmable telephone switch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run a scenario file (events in, expected decisions out) against a plugin component.
    Test {
        /// The plugin component (.wasm), in any language.
        plugin: PathBuf,
        /// Scenario files (.yaml, .yml or .json).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Per-call deadline in milliseconds.
        #[arg(long, default_value_t = 100)]
        deadline_ms: u64,
        /// Memory cap per instance in MiB.
        #[arg(long, default_value_t = 128)]
        max_memory_mib: usize,
    },
    /// Validate a component and show what it exports.
    Inspect {
        /// The plugin component (.wasm).
        plugin: PathBuf,
    },
    /// Create a new plugin project.
    New {
        /// The plugin's language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// What the plugin does (its WIT world).
        #[arg(long, value_enum, default_value = "router")]
        world: scaffold::World,
        /// The plugin's name; also the directory created.
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plugin(PluginCommand::Test {
            plugin,
            scenarios,
            deadline_ms,
            max_memory_mib,
        }) => test(plugin, scenarios, deadline_ms, max_memory_mib),
        Command::Plugin(PluginCommand::Inspect { plugin }) => {
            let h = Harness::load(&plugin)?;
            let p = h.plugin();
            println!("{}", plugin.display());
            println!("  sha256:  {}", p.sha256);
            println!("  size:    {} bytes", p.size);
            for c in &p.capabilities {
                println!("  exports: {} (world {})", c.export_name(), c.world());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::New { lang, world, name }) => {
            let dir = PathBuf::from(&name);
            if dir.exists() {
                bail!("{} already exists", dir.display());
            }
            let lang = match lang {
                Lang::Rust => scaffold::Lang::Rust,
                Lang::Python => scaffold::Lang::Python,
                Lang::Js => scaffold::Lang::Js,
            };
            let files = scaffold::files(lang, world, &name)?;
            for (path, contents) in &files {
                let path = dir.join(path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&path, contents)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("created {}", path.display());
            }
            println!("\nnext: read {name}/README.md");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn test(
    plugin: PathBuf,
    scenarios: Vec<PathBuf>,
    deadline_ms: u64,
    max_memory_mib: usize,
) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&plugin).with_context(|| format!("cannot read {}", plugin.display()))?;
    let config = wasmswitch::plugins::RuntimeConfig {
        deadline: Duration::from_millis(deadline_ms),
        max_memory_bytes: max_memory_mib << 20,
        ..harness::default_config()
    };
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Load inside the runtime: the harness's instance pool and epoch ticker live with it.
    let harness = tokio
        .block_on(async { Harness::from_bytes(&bytes, config) })
        .with_context(|| format!("cannot load {}", plugin.display()))?;
    let (mut passed, mut failed) = (0, 0);
    for path in &scenarios {
        let scenario = Scenario::from_file(path)?;
        println!(
            "{} ({})",
            scenario.name.as_deref().unwrap_or("scenario"),
            path.display()
        );
        let report = tokio.block_on(scenario.run(&harness));
        for case in &report.cases {
            if case.passed() {
                println!("  ok    {} (fuel {})", case.name, case.fuel);
            } else {
                println!("  FAIL  {}", case.name);
                for f in &case.failures {
                    println!("        {f}");
                }
            }
        }
        passed += report.passed();
        failed += report.failed();
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
