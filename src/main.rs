//! The `steward` binary: `serve` (the default), `migrate`, and the client commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use steward::config::{log_filter, Config, Overrides};
use steward::store::Store;
use steward::Application;

#[derive(Parser)]
#[command(name = "steward", version, about = "A task orchestration server")]
#[command(after_help = steward::cli::CLIENT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, global = true)]
    bind: Option<String>,
    /// Data directory (default ./data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: postgres://… for PostgreSQL; default SQLite in the data dir.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Configuration file (default ./steward.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Schedules to load at start-up (seed 003's YAML or JSON; upserted by name).
    #[arg(long, global = true)]
    schedules: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Run a remote execution unit connected to a steward server.
    Worker(WorkerArgs),
}

#[derive(clap::Args)]
struct WorkerArgs {
    /// The server's URL.
    #[arg(long, env = "STEWARD_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token for the server.
    #[arg(long, env = "STEWARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The unit's name (unique among workers; a reconnect under the same name resumes).
    #[arg(long)]
    name: Option<String>,
    /// Task types to run, comma-separated (default: every built-in type).
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// How many tasks run at once.
    #[arg(long, default_value_t = 4)]
    capacity: usize,
    /// Labels tasks can require with `unit_labels`, as k=v,k2=v2.
    #[arg(long, default_value = "")]
    labels: String,
}

fn main() -> ExitCode {
    // `steward task|batch|schedule …` is the client, with its own flags (its --config is JSON).
    if let Some(code) = steward::cli::run_if_client(std::env::args_os().collect()) {
        return code;
    }
    let cli = Cli::parse();
    let schedules = cli.schedules.clone();
    let overrides = Overrides {
        config_file: cli.config,
        bind: cli.bind,
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url,
    };
    let config = Config::load(&overrides);
    let level = config
        .as_ref()
        .ok()
        .and_then(|c| log_filter(&c.log_level))
        .unwrap_or(log::LevelFilter::Info);
    let mut logger = env_logger::Builder::new();
    logger.filter_level(level).parse_env("RUST_LOG");
    let mut file_error = None;
    if let Some(c) = config.as_ref().ok().filter(|c| c.log_dir.is_some()) {
        let dir = c.log_dir.clone().unwrap_or_default();
        match steward::logfile::RotatingFile::open(&dir, c.log_max_bytes, c.log_max_files) {
            Ok(file) => {
                logger.target(env_logger::Target::Pipe(Box::new(steward::logfile::Tee {
                    file,
                })));
            }
            Err(e) => {
                file_error = Some(format!(
                    "cannot open the log file in {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    // The tap also records steward's warnings and errors in the system log (`/api/v1/logs`).
    let inner = logger.build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(steward::syslog::Tap { inner })).is_ok() {
        log::set_max_level(max);
    }
    if let Some(e) = file_error {
        log::error!("{e}");
    }
    if let Some(Command::Worker(args)) = cli.command {
        return worker(args, cli.data_dir);
    }
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            log::error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => migrate(&config),
        Command::Serve => serve(config, schedules),
        Command::Worker(_) => ExitCode::FAILURE,
    }
}

fn worker(args: WorkerArgs, data_dir: Option<PathBuf>) -> ExitCode {
    let labels = match steward::worker::parse_labels(&args.labels) {
        Ok(l) => l,
        Err(e) => {
            log::error!("--labels: {e}");
            return ExitCode::from(2);
        }
    };
    let name = args.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "worker".into());
        format!("{}-{}", host.trim(), std::process::id())
    });
    let opts = steward::worker::WorkerOptions {
        server: args.server,
        token: args.token,
        name,
        types: args.types,
        capacity: args.capacity,
        labels,
        data_dir: data_dir.unwrap_or_else(|| PathBuf::from("./worker-data")),
        kill_grace: std::time::Duration::from_secs(5),
        python: PathBuf::from("python3"),
    };
    match actix_rt::System::new().block_on(steward::worker::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(config: &Config) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        log::error!("cannot create {}: {e}", config.data_dir.display());
        return ExitCode::FAILURE;
    }
    match Store::open(&config.effective_database_url(), 1) {
        Ok(store) => {
            log::info!("{} database is up to date", store.backend().name());
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("migration failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config, schedules: Option<PathBuf>) -> ExitCode {
    let result = actix_rt::System::new().block_on(async move {
        let app = Application::build(config)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(path) = schedules {
            let report = steward::api::schedules_io::import_file(&app.state(), &path).await?;
            log::info!("loaded schedules from {}: {report}", path.display());
        }
        app.run_until_stopped().await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
