#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

/// jemalloc with one arena and dirty pages returned after a second (`.cargo/config.toml`): the
/// system allocators kept a third more memory in per-thread arenas (glibc) or ran slowly (musl).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Manages OAuth apps and clients from Kubernetes resources.
#[derive(Parser)]
#[command(name = "oauth-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers.
    Run(Box<oauth_operator::config::RunArgs>),
    /// Print both CustomResourceDefinitions as YAML.
    Crd,
    /// Print the operator's version.
    Version,
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Crd => print!("{}", oauth_operator::api::crds_yaml()),
        Command::Version => println!("oauth-operator {}", env!("CARGO_PKG_VERSION")),
        Command::Run(args) => {
            oauth_operator::telemetry::init(args.log_format);
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            if let Err(e) = runtime.block_on(oauth_operator::run::run(*args)) {
                tracing::error!(error = %e, "oauth-operator stopped");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
