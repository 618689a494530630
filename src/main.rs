#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

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
    Run,
    /// Print both CustomResourceDefinitions as YAML.
    Crd,
    /// Print the operator's version.
    Version,
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Crd => print!("{}", oauth_operator::api::crds_yaml()),
        Command::Version => println!("oauth-operator {}", env!("CARGO_PKG_VERSION")),
        Command::Run => {
            eprintln!("oauth-operator run: the controllers are not built yet");
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
