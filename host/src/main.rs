//! The `wasmswitch` binary: the switch itself and the tools plugin authors use.

mod client;
mod scaffold;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use wasmswitch::config::{Config, LogFormat};
use wasmswitch::plugins::harness::{self, Harness};
use wasmswitch::plugins::scenario::Scenario;
use wasmswitch::service::Service;

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
    /// Run the switch: the REST API, with every tenant's active plugins loaded.
    Serve {
        /// The configuration file (default: ./wasmswitch.toml if present). Every setting can
        /// also be set by WASMSWITCH_<SECTION>_<KEY>; see wasmswitch.example.toml.
        #[arg(long, env = "WASMSWITCH_CONFIG")]
        config: Option<PathBuf>,
        /// On first start, create a tenant "demo" with every component in this folder
        /// (NAME.wasm becomes plugin NAME, active), a number and a routing table.
        #[arg(long, value_name = "DIR")]
        seed_demo: Option<PathBuf>,
    },
    /// Bring the database schema up to date, then exit.
    Migrate {
        /// The configuration file (for database.url; DATABASE_URL also works).
        #[arg(long, env = "WASMSWITCH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the example configuration, every setting at its default and documented.
    Config,
    /// Check that a switch is ready (its `/readyz` answers 200): exit 0 if so, 1 if not. For
    /// container health checks, where there is no curl.
    Health {
        /// The readiness URL.
        #[arg(default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
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
    /// Upload a component to a running switch as the next version of a plugin.
    Push {
        /// The component (.wasm).
        plugin: PathBuf,
        /// The plugin's name in the tenant (a plugin named `router` routes the tenant's calls).
        #[arg(long)]
        name: String,
        /// The world it must implement: router, ivr, messaging or switch.
        #[arg(long)]
        world: Option<String>,
        /// Make it active for new calls at once.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// List a tenant's plugins and their versions.
    List {
        /// Only this plugin's versions.
        name: Option<String>,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// Make a stored version the active one.
    Activate {
        name: String,
        version: u32,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// Go back to the version that was active before (after a deactivation: the one
    /// deactivated).
    Rollback {
        name: String,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// Make no version of a plugin active: new calls no longer reach it (calls in progress keep
    /// theirs).
    Deactivate {
        name: String,
        #[command(flatten)]
        remote: client::Remote,
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
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. } | Command::Migrate { .. }) {
        // The tools log warnings only; the service configures its own logging.
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `wasmswitch health`: one GET, ready only on a 2xx answer.
fn health(url: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = tokio.block_on(async {
        reqwest::Client::builder()
            .timeout(timeout)
            .build()?
            .get(url)
            .send()
            .await
    });
    match answer {
        Ok(r) if r.status().is_success() => {
            println!("ready: {url} answered {}", r.status());
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            println!("not ready: {url} answered {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            println!("not ready: {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

type LogHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// Reads the configuration and sets up logging from it; the handle changes the log level live.
fn load_config(path: Option<&Path>) -> anyhow::Result<(Config, LogHandle)> {
    let config = Config::load(path)?;
    let (filter, handle) =
        tracing_subscriber::reload::Layer::new(EnvFilter::try_new(&config.log.level)?);
    let registry = tracing_subscriber::registry().with(filter);
    // Colour only for a person at a terminal: a file or `docker logs` would keep the escape
    // codes as text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log.format {
        LogFormat::Json => registry.with(fmt.json()).init(),
        LogFormat::Text => registry.with(fmt).init(),
    }
    Ok((config, handle))
}

fn serve(
    config: Config,
    config_path: Option<PathBuf>,
    log: LogHandle,
    seed_demo: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let service = Service::start(config).await?;
        if let Some(dir) = seed_demo
            && service.seed_demo(&dir).await?.is_none()
        {
            println!("wasmswitch: tenant \"demo\" exists already; not seeding it again");
        }
        println!(
            "wasmswitch SIP on udp {} and tcp {}",
            service.sip_addrs.udp, service.sip_addrs.tcp
        );
        if let Some(tls) = service.sip_addrs.tls {
            println!("wasmswitch SIP over TLS on {tls}");
        }
        println!("wasmswitch API on http://{}", service.api_addr);
        watch_config(&service, config_path, &log).await;
        tracing::info!("shutting down");
        service.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Waits for SIGINT or SIGTERM; meanwhile reloads the configuration on SIGHUP and when the
/// file, or a file it names that is read live (the TLS certificate and key), changes (checked
/// every 2 s), applying the settings that can change live.
async fn watch_config(service: &Service, path: Option<PathBuf>, log: &LogHandle) {
    let file = path
        .clone()
        .or_else(|| Some(PathBuf::from("wasmswitch.toml")).filter(|p| p.exists()));
    let modified = |file: &Option<PathBuf>| {
        file.iter()
            .cloned()
            .chain(service.live_files())
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect::<Vec<_>>()
    };
    let mut seen = modified(&file);
    let mut every = tokio::time::interval(Duration::from_secs(2));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let why = tokio::select! {
            _ = &mut shutdown => return,
            _ = hangup => "SIGHUP",
            _ = every.tick() => {
                let now = modified(&file);
                if now == seen {
                    continue;
                }
                seen = now;
                "a configuration file changed"
            }
        };
        reload(service, path.as_deref(), log, why);
    }
}

fn reload(service: &Service, path: Option<&Path>, log: &LogHandle, why: &str) {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{why}: configuration not reloaded, the running one stays. {e}");
            return;
        }
    };
    let done = service.reload(&config);
    if let Some(level) = &done.log_level
        && let Ok(filter) = EnvFilter::try_new(level)
        && let Err(e) = log.reload(filter)
    {
        tracing::error!(error = %e, "cannot change the log level");
    }
    for a in &done.applied {
        tracing::info!(reason = why, "configuration reloaded: {a}");
    }
    for r in &done.refused {
        tracing::error!(reason = why, "configuration setting refused: {r}");
    }
    if !done.needs_restart.is_empty() {
        tracing::warn!(
            reason = why,
            settings = ?done.needs_restart,
            "these settings changed but take effect only after a restart"
        );
    }
    if done.applied.is_empty() && done.refused.is_empty() && done.needs_restart.is_empty() {
        tracing::info!(reason = why, "configuration reloaded: nothing changed");
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config, seed_demo } => {
            let (loaded, log) = load_config(config.as_deref())?;
            serve(loaded, config, log, seed_demo)
        }
        Command::Migrate { config } => {
            let (config, _) = load_config(config.as_deref())?;
            let tokio = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            tokio.block_on(async {
                let store = wasmswitch::service::migrate(&config).await?;
                store.close().await;
                anyhow::Ok(())
            })?;
            println!(
                "database {} is up to date",
                wasmswitch::config::redact_url(&config.database.url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config => {
            print!("{}", Config::example());
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { url, timeout_ms } => health(&url, Duration::from_millis(timeout_ms)),
        Command::Plugin(PluginCommand::Test {
            plugin,
            scenarios,
            deadline_ms,
            max_memory_mib,
        }) => test(plugin, scenarios, deadline_ms, max_memory_mib),
        Command::Plugin(PluginCommand::Push {
            plugin,
            name,
            world,
            activate,
            remote,
        }) => remote_call(&remote, async |c| {
            c.push(&plugin, &name, world.as_deref(), activate).await
        }),
        Command::Plugin(PluginCommand::List { name, remote }) => {
            remote_call(&remote, async |c| c.list(name.as_deref()).await)
        }
        Command::Plugin(PluginCommand::Activate {
            name,
            version,
            remote,
        }) => remote_call(&remote, async |c| c.activate(&name, version).await),
        Command::Plugin(PluginCommand::Rollback { name, remote }) => {
            remote_call(&remote, async |c| c.rollback(&name).await)
        }
        Command::Plugin(PluginCommand::Deactivate { name, remote }) => {
            remote_call(&remote, async |c| c.deactivate(&name).await)
        }
        Command::Plugin(PluginCommand::Inspect { plugin }) => {
            let h = Harness::load(&plugin)?;
            let p = h.plugin();
            println!("{}", plugin.display());
            println!("  sha256:  {}", p.sha256);
            println!("  size:    {} bytes", p.size);
            println!(
                "  contract: wasmswitch:plugin@{} (bindings {})",
                p.target, p.target.contract
            );
            for interface in &p.interfaces {
                println!(
                    "  exports: wasmswitch:plugin/{interface}@{} (world {})",
                    p.target,
                    p.world()
                );
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

/// Runs one API command on a small runtime.
fn remote_call(
    remote: &client::Remote,
    f: impl AsyncFnOnce(&client::Client) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let c = client::Client::connect(remote).await?;
        f(&c).await
    })?;
    Ok(ExitCode::SUCCESS)
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
